"""Triggers: cron schedules and event conditions that start workflows."""
