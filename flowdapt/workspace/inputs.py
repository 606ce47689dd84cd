"""Run input from ``--key value`` pairs, as Flowdapt's ``flowctl run`` reads them.

``--a.b 1`` nests, ``--a[0] x`` sets a list index, ``--a[] x`` appends, and values are coerced to
int, float, bool, null or JSON lists/objects where they parse. Every key needs a value: ``--name``
alone is an error rather than ``name=True`` (a forgotten value must not run with ``True``); write
``--debug true`` for a flag.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flowdapt.errors import FlowdaptError

_PART = re.compile(r"^([A-Za-z_][\w-]*)((?:\[\d*\])*)$")


class InputError(FlowdaptError):
    """An extra argument of ``flowctl run`` cannot be read as input."""


def coerce(text: str) -> Any:
    """``"3"`` → 3, ``"2.5"`` → 2.5, ``"true"`` → True, ``"null"`` → None, ``"[1,2]"`` → [1, 2]; else the text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def parse_input(args: list[str]) -> dict[str, Any]:
    """The input dict from extra ``--key value`` arguments."""
    data: dict[str, Any] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("--") or len(arg) == 2:
            raise InputError(f"unexpected argument '{arg}' (input is given as --key value)")
        key, sep, value = arg[2:].partition("=")
        if not sep:
            following = args[index + 1] if index + 1 < len(args) else None
            if following is None or following.startswith("--"):
                raise InputError(f"{arg} needs a value (input is given as {arg} VALUE; write {arg} true for a flag)")
            value = following
            index += 1
        _assign(data, key, coerce(value))
        index += 1
    return data


def _assign(data: dict[str, Any], key: str, value: Any) -> None:
    steps: list[str | int | None] = []
    for part in key.split("."):
        match = _PART.match(part)
        if not match:
            raise InputError(f"invalid input key '--{key}'")
        steps.append(match.group(1))
        steps.extend(int(i) if i else None for i in re.findall(r"\[(\d*)\]", match.group(2)))
    node: Any = data
    for step, following in zip(steps, steps[1:] + [_END]):
        container = {} if isinstance(following, str) else []
        if following is _END:
            _put(node, step, value, key)
        else:
            existing = _get(node, step)
            if not isinstance(existing, type(container)):
                existing = container
                _put(node, step, existing, key)
            node = existing


_END: Any = object()


def _get(node: Any, step: Any) -> Any:
    if isinstance(node, dict):
        return node.get(step)
    if step is None or step >= len(node):
        return None
    return node[step]


def _put(node: Any, step: Any, value: Any, key: str) -> None:
    if isinstance(node, dict):
        node[step] = value
    elif step is None or step == len(node):
        node.append(value)
    elif step < len(node):
        node[step] = value
    else:
        raise InputError(f"--{key}: list index {step} skips positions (the list has {len(node)} items)")
