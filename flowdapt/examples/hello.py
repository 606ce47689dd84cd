"""The hello workflow: a root stage that reads the run input, and one that consumes its output."""

from __future__ import annotations

from flowdapt import get_run_context


def greet(name: str = "world") -> str:
    """Root stage: gets ``name`` from the run input (``flowctl run hello --name Ada``)."""
    return f"Hello, {name}!"


def sign(greeting: str) -> dict[str, str]:
    """Second stage: receives ``greet``'s output positionally and adds who ran it."""
    context = get_run_context()
    return {"greeting": greeting, "run": context.run.name, "workflow": context.run.workflow}
