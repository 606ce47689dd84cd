"""Printing resources and runs as a table, JSON or YAML."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any, Iterator, Sequence

import click
import yaml
from rich.console import Console
from rich.table import Table

from flowdapt.resources.models import Resource, WorkflowRun
from flowdapt.workspace.tables import COLUMNS

FORMATS = ("table", "json", "yaml")
output_option = click.option("-o", "--output", "-f", "--format", "fmt", type=click.Choice(FORMATS),
                             default="table", show_default=True, help="Output format.")


def document(item: Resource | WorkflowRun | dict) -> dict[str, Any]:
    """The JSON-safe document of a resource, run or plain mapping."""
    if hasattr(item, "to_document"):
        return item.to_document()
    return item.model_dump(mode="json") if hasattr(item, "model_dump") else item


def dumps(data: Any, fmt: str) -> str:
    """``data`` as JSON or YAML text."""
    if fmt == "json":
        return json.dumps(data, indent=2, default=str)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip()


def console() -> Console:
    """Standard output (wide enough that a table is not folded when piped)."""
    return Console(soft_wrap=True, width=None if Console().is_terminal else 200)


def print_items(items: Sequence[Any], kind: str, fmt: str) -> None:
    """Print resources or runs of ``kind`` as a table or as a JSON/YAML list of documents."""
    if fmt != "table":
        print(dumps([document(item) for item in items], fmt))
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    columns = COLUMNS[kind]
    for header, _ in columns:
        table.add_column(header, no_wrap=True)
    for item in items:
        table.add_row(*(getter(item) for _, getter in columns))
    console().print(table)


def print_document(item: Any, fmt: str) -> None:
    """Print one resource or run in full (``table`` prints YAML, as ``flowctl inspect`` does)."""
    print(dumps(document(item), "json" if fmt == "json" else "yaml"))


def print_mapping(data: dict[str, Any], fmt: str) -> None:
    """Print ``key: value`` pairs (status) as a two-column table or JSON/YAML."""
    if fmt != "table":
        print(dumps(data, fmt))
        return
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in data.items():
        table.add_row(key, str(value))
    console().print(table)


@contextlib.contextmanager
def stdout_kept_for_the_document(keep: bool) -> Iterator[None]:
    """While a run goes on in this process, whatever writes to its standard output (stages, libraries,
    the worker processes it starts) writes to standard error instead, so that with ``-o json|yaml`` the
    standard output holds only the document printed afterwards."""
    if not keep:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
