"""The ``notify`` trigger action: a webhook (an HTTP POST with a JSON body) and/or an email.

Parameters (``spec.action.parameters``)::

    message: "Run {data.name} of {data.workflow} failed: {data.error.message}"   # optional template
    subject: "flowdapt: {data.workflow} {data.state}"                            # email subject template
    webhook: https://hooks.example.com/...        # or {url: ..., headers: {...}}
    email: ops@example.com                        # or [a@x, b@y], or {to: [...], smtp: {host: ..., ...}}

Templates name values of the event by dot path in braces (``{data.workflow}``, ``{type}``), plus
``{trigger}`` and ``{logical_time}``; a path that is not there reads as empty. The webhook's body is
``{"text", "message", "trigger", "logical_time", "event"}`` (``text`` is what Slack-style incoming
webhooks show). Email goes through the SMTP server of ``notify.smtp`` in ``flowdapt.yaml`` (keep its
password there rather than in trigger documents), which a trigger's ``email.smtp`` overrides key by key.
A webhook that does not answer 2xx, or a mail server that refuses, fails the firing with the reason.
"""

from __future__ import annotations

import asyncio
import json
import re
import smtplib
from email.message import EmailMessage
from typing import Any

from flowdapt.settings import SmtpSettings, get_settings

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
DEFAULT_MESSAGES = {
    "com.event.workflow.workflow_failed": "Run {data.name} of workflow {data.workflow} failed: "
                                          "{data.error.type}: {data.error.message}",
    "com.event.workflow.workflow_finished": "Run {data.name} of workflow {data.workflow} ended {data.state}",
    "com.event.trigger.schedule_late": "Trigger {data.trigger} fired {data.late_by}s after its time "
                                       "{data.scheduled_for} (SLA: {data.sla}s)",
    "com.event.trigger.schedule_missed": "Trigger {data.trigger} missed its time {data.scheduled_for}",
}
DEFAULT_SUBJECT = "flowdapt: {trigger}"


def validate_notify(parameters: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming what is wrong with ``notify`` parameters (checked when applied)."""
    known = {"message", "subject", "webhook", "email"}
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise ValueError(f"notify: unknown parameter '{unknown[0]}' (known: {', '.join(sorted(known))})")
    if not parameters.get("webhook") and not parameters.get("email"):
        raise ValueError("notify needs parameters.webhook (a URL) or parameters.email (addresses)")
    if parameters.get("webhook"):
        url, headers = _webhook(parameters["webhook"])
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"notify: webhook '{url}' is not an http(s) URL")
        if not all(isinstance(key, str) and isinstance(value, str) for key, value in headers.items()):
            raise ValueError("notify: webhook.headers maps header names to strings")
    if parameters.get("email"):
        recipients, smtp = _email(parameters["email"])
        bad = [address for address in recipients if not isinstance(address, str) or "@" not in address]
        if not recipients or bad:
            raise ValueError(f"notify: email needs addresses such as ops@example.com, got {bad[0] if bad else 'none'}")
        try:
            SmtpSettings.model_validate({**get_settings().notify.smtp.model_dump(), **smtp})
        except Exception as exc:  # noqa: BLE001 - pydantic's message, on one line
            raise ValueError(f"notify: email.smtp: {str(exc).splitlines()[-2].strip()}") from None
    for name in ("message", "subject"):
        if name in parameters and not isinstance(parameters[name], str):
            raise ValueError(f"notify: {name} must be a text template")


def _webhook(value: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(value, dict):
        return str(value.get("url", "")), dict(value.get("headers") or {})
    return str(value), {}


def _email(value: Any) -> tuple[list[Any], dict[str, Any]]:
    if isinstance(value, dict):
        to = value.get("to") or []
        return ([to] if isinstance(to, str) else list(to)), dict(value.get("smtp") or {})
    return ([value] if isinstance(value, str) else list(value)), {}


def render(template: str, values: dict[str, Any]) -> str:
    """``template`` with each ``{dot.path}`` replaced by that value of ``values`` (empty when absent)."""

    def value(match: re.Match[str]) -> str:
        node: Any = values
        for part in match.group(1).split("."):
            if not isinstance(node, dict) or part not in node:
                return ""
            node = node[part]
        return "" if node is None else node if isinstance(node, str) else json.dumps(node, default=str)

    return _PLACEHOLDER.sub(value, template)


def notification(context: Any, parameters: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """``(message, subject, body)`` of a firing: the rendered texts and the webhook's JSON body."""
    event = context.event.to_dict() if context.event is not None else None
    logical_time = context.logical_time.isoformat() if context.logical_time is not None else None
    values = {**(event or {}), "trigger": context.trigger.name, "logical_time": logical_time}
    default = DEFAULT_MESSAGES.get(event["type"], "{type}: {data}") if event else "Trigger {trigger} fired"
    message = render(parameters.get("message") or default, values)
    subject = render(parameters.get("subject") or DEFAULT_SUBJECT, values)
    body = {"text": message, "message": message, "trigger": context.trigger.name, "logical_time": logical_time,
            "event": event}
    return message, subject, body


async def send_notifications(context: Any, parameters: dict[str, Any]) -> None:
    """Send the webhook and the email a firing asks for (both are tried; the first failure is raised)."""
    message, subject, body = notification(context, parameters)
    failures: list[BaseException] = []
    if parameters.get("webhook"):
        try:
            await post_webhook(*_webhook(parameters["webhook"]), body)
        except Exception as exc:  # noqa: BLE001 - the email is still tried; the firing records the failure
            failures.append(exc)
    if parameters.get("email"):
        recipients, smtp = _email(parameters["email"])
        try:
            await asyncio.to_thread(send_email, recipients, subject, message, body, smtp)
        except Exception as exc:  # noqa: BLE001
            failures.append(exc)
    if failures:
        raise failures[0]


async def post_webhook(url: str, headers: dict[str, str], body: dict[str, Any]) -> None:
    """POST ``body`` as JSON to ``url``; an answer that is not 2xx raises with its status and text."""
    import httpx

    async with httpx.AsyncClient(timeout=get_settings().notify.timeout) as client:
        response = await client.post(url, content=json.dumps(body, default=str),
                                     headers={"Content-Type": "application/json", **headers})
    if not response.is_success:
        raise RuntimeError(f"webhook {url} answered {response.status_code}: {response.text[:200]}")


def send_email(recipients: list[str], subject: str, message: str, body: dict[str, Any],
               overrides: dict[str, Any] | None = None) -> None:
    """Send one email through the configured SMTP server (``overrides`` win key by key)."""
    smtp = SmtpSettings.model_validate({**get_settings().notify.smtp.model_dump(), **(overrides or {})})
    email = EmailMessage()
    email["From"] = smtp.sender
    email["To"] = ", ".join(recipients)
    email["Subject"] = subject
    email.set_content(f"{message}\n\n{json.dumps(body['event'], indent=2, default=str)}\n")
    connect = smtplib.SMTP_SSL if smtp.ssl else smtplib.SMTP
    with connect(smtp.host, smtp.port, timeout=smtp.timeout) as server:
        if smtp.starttls:
            server.starttls()
        if smtp.username:
            server.login(smtp.username, smtp.password or "")
        server.send_message(email)
