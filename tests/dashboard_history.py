"""A run history made for the dashboard tests, and the numbers it should show, computed in plain Python.

:func:`make_history` builds rows of every table (runs in every state, stage attempts with retries,
item failures and output notebooks, schedule firings on time, late, failed and missing, condition
firings) around a given ``now``; :class:`History` loads them into a store and answers what the
statistics must be, without SQL (``numpy.percentile``'s linear interpolation is ``percentile_cont``).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from flowdapt.history import orm
from flowdapt.history.bulk import upsert
from flowdapt.resources.loading import parse_resource

WORKFLOWS = ("etl", "train", "report")
ERRORS = [("ValueError", "bad row 17"), ("KeyError", "'price'"), ("TimeoutError", "stage 'load' timed out after 30s")]
ACTIVE = ("pending", "running")
HOURLY = "hourly"  # a schedule trigger: 0 * * * *
MISSING_HOURS = (5, 11)  # hours ago whose firing never happened
LATE_HOURS = {3: 5.0, 8: 120.0}  # hours ago: lateness in seconds
FAILED_HOURS = (2,)


@dataclass
class History:
    """The rows of a made-up history and the trigger rule it was fired for."""

    now: datetime
    runs: list[dict[str, Any]] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    firings: list[dict[str, Any]] = field(default_factory=list)
    trigger: Any = None

    def load(self, store: Any) -> None:
        """Write every row into an open store, the trigger rule into its catalog, and the trigger's last fire
        time (this hour), so a trigger service running on the store does not fire it again."""
        with store.engine.begin() as conn:
            upsert(conn, orm.runs, self.runs)
            upsert(conn, orm.stage_runs, self.stages)
            upsert(conn, orm.trigger_firings, self.firings)
            upsert(conn, orm.trigger_state, [{"trigger_uid": self.trigger.uid, "last_fire_time": self.hour(0),
                                              "lease_owner": None, "lease_until": None}])
        store.apply([self.trigger])

    # -- what the statistics must answer --------------------------------------------------------------
    def matching(self, workflow: str | None = None, state: str | None = None, source: str | None = None,
                 since: datetime | None = None) -> list[dict[str, Any]]:
        """The runs a filter covers (``since``: started at or after; runs never started are left out then)."""
        return [run for run in self.runs
                if (workflow is None or run["workflow"] == workflow) and (state is None or run["state"] == state)
                and (source is None or run["source"] == source)
                and (since is None or (run["started_at"] is not None and aware(run["started_at"]) >= since))]

    def summary(self, **filters: Any) -> dict[str, Any]:
        runs = self.matching(**filters)
        ended = [run for run in runs if run["state"] not in ACTIVE]
        finished = sum(run["state"] == "finished" for run in ended)
        durations = [run["duration"] for run in ended if run["duration"] is not None]
        return {"runs": len(runs), "states": Counter(run["state"] for run in runs), "ended": len(ended),
                "success_rate": finished / len(ended), "p50": pct(durations, 50), "p95": pct(durations, 95)}

    def timeline(self, bucket: str, **filters: Any) -> dict[tuple[datetime, str], int]:
        """Runs per (bucket start, state)."""
        counts: Counter = Counter()
        for run in self.matching(**filters):
            if run["started_at"] is not None:
                start = run["started_at"].replace(minute=0, second=0, microsecond=0)
                if bucket == "day":
                    start = start.replace(hour=0)
                counts[(aware(start), run["state"])] += 1
        return dict(counts)

    def errors(self, **filters: Any) -> list[tuple[str, str, int, str]]:
        """(type, message, runs, latest run's uid), most runs first."""
        groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for run in self.matching(**filters):
            if run["error"] is not None and run["state"] in ("failed", "interrupted"):
                groups[(run["error"]["type"], run["error"]["message"])].append(run)
        answer = [(kind, message, len(runs), max(runs, key=lambda run: run["finished_at"])["uid"])
                  for (kind, message), runs in groups.items()]
        return sorted(answer, key=lambda group: -group[2])

    def stage_durations(self, workflow: str) -> dict[str, list[float]]:
        found: dict[str, list[float]] = defaultdict(list)
        for row in self.stages:
            if row["workflow"] == workflow and row["state"] in ("finished", "failed"):
                found[row["stage"]].append(row["duration"])
        return found

    def item_failures(self, workflow: str) -> Counter:
        return Counter((row["stage"], failure["index"]) for row in self.stages if row["workflow"] == workflow
                       for failure in row["item_failures"] or [])

    def missed_times(self) -> list[datetime]:
        return sorted((self.hour(ago) for ago in MISSING_HOURS), reverse=True)

    def hour(self, ago: int) -> datetime:
        return self.now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=ago)


def aware(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def make_history(now: datetime | None = None, seed: int = 21) -> History:
    """About 150 runs of three workflows over the last six days (plus two 40 days old), their stages and
    a day of hourly firings, around ``now`` (default: the current time)."""
    rng = random.Random(seed)
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    history = History(now=now)
    for number in range(150):
        workflow = WORKFLOWS[number % 3]
        started = now - timedelta(minutes=rng.randrange(10, 6 * 24 * 60))
        state = rng.choices(["finished", "failed", "cancelled"], weights=[75, 20, 5])[0]
        history.runs.append(_run(number, workflow, state, started, round(rng.uniform(1, 90), 3),
                                 rng.choice(["manual", "api", "trigger", "notebook"]), rng))
    for number, age in ((150, 40), (151, 41)):  # outside "the last 30 days"
        history.runs.append(_run(number, "etl", "finished", now - timedelta(days=age), 10.0, "manual", rng))
    history.runs.append({**_run(152, "train", "running", now - timedelta(minutes=3), None, "api", rng)})
    history.runs.append({**_run(153, "etl", "pending", None, None, "trigger", rng)})
    history.runs.append(_run(154, "report", "interrupted", now - timedelta(hours=30), 4.0, "manual", rng))
    for run in history.runs:
        if run["workflow"] == "etl" and run["started_at"] is not None:
            history.stages += _etl_stages(run, rng)
    history.trigger = parse_resource({
        "kind": "trigger_rule",
        "metadata": {"name": HOURLY, "created_at": (now - timedelta(hours=30, minutes=30)).isoformat(),
                     "updated_at": (now - timedelta(hours=24, minutes=30)).isoformat()},
        "spec": {"type": "schedule", "rule": ["0 * * * *"],
                 "action": {"target": "run_workflow", "parameters": {"workflow": "etl"}}}})
    for ago in range(24, -1, -1):  # up to this hour
        if ago in MISSING_HOURS:
            continue
        scheduled = history.hour(ago)
        lateness = LATE_HOURS.get(ago, 0.004 + ago / 1000)
        history.firings.append({"id": f"f{ago}", "trigger": HOURLY, "fired_at": scheduled + timedelta(seconds=lateness),
                                "action": "run_workflow", "run_uid": f"{ago:032x}", "ok": ago not in FAILED_HOURS,
                                "error": "workflow 'etl' not found" if ago in FAILED_HOURS else None,
                                "scheduled_at": scheduled})
    for number in range(3):
        history.firings.append({"id": f"c{number}", "trigger": "on-data", "fired_at": now - timedelta(hours=number + 1),
                                "action": "run_workflow", "run_uid": None, "ok": True, "error": None,
                                "scheduled_at": None})
    return history


def _run(number: int, workflow: str, state: str, started: datetime | None, duration: float | None, source: str,
         rng: random.Random) -> dict[str, Any]:
    ended = state not in ACTIVE and started is not None
    error = None
    if state == "failed":
        kind, message = ERRORS[min(int(rng.expovariate(1.2)), 2)]
        error = {"type": kind, "message": message, "traceback": f"Traceback ...\n{kind}: {message}", "stage": "load"}
    elif state == "interrupted":
        error = {"type": "Interrupted", "message": "the process running this workflow stopped", "traceback": ""}
    return {"uid": f"{number:032x}", "name": f"{workflow}-run-{number}", "workflow": workflow, "source": source,
            "state": state, "executor": "local", "namespace": "default", "input": {"n": number}, "result": None,
            "error": error, "started_at": started and started.replace(tzinfo=None),
            "finished_at": (started + timedelta(seconds=duration)).replace(tzinfo=None) if ended and duration else None,
            "duration": duration if ended else None, "owner": None}


def _etl_stages(run: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    """extract (simple; retried once in a fifth of the runs), transform (parameterized, items failing),
    load (a notebook stage with its output notebook)."""
    rows, clock = [], run["started_at"]
    plan = [("extract", "simple", 1), ("transform", "parameterized", 1), ("load", "notebook", 1)]
    if rng.random() < 0.2:
        plan[0] = ("extract", "simple", 2)
    for position, (stage, kind, attempts) in enumerate(plan):
        for attempt in range(1, attempts + 1):
            duration = round(rng.uniform(0.5, 20), 3)
            failed = attempt < attempts or (stage == "load" and run["state"] == "failed")
            failures = ([{"index": index, "type": "ValueError", "message": f"item {index} is odd"}
                         for index in (1, 3) if rng.random() < 0.5 + index / 10] if kind == "parameterized" else None)
            rows.append({"id": f"{run['uid']}:{stage}:{attempt}", "run_uid": run["uid"], "workflow": run["workflow"],
                         "stage": stage, "position": position, "type": kind, "attempt": attempt,
                         "state": "failed" if failed else "finished", "started_at": clock,
                         "finished_at": clock + timedelta(seconds=duration), "duration": duration,
                         "error": {"type": "OSError", "message": "flaky"} if failed else None,
                         "items_total": 5 if failures is not None else None, "items_done": 5 if failures is not None else 0,
                         "items_failed": len(failures or []), "item_failures": failures,
                         "output_notebook": f"runs/{run['uid']}/load.ipynb" if kind == "notebook" else None})
            clock += timedelta(seconds=duration)
    return rows
