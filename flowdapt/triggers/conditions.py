"""Flowdapt's JSON-logic condition DSL: ``eq ne gt lt ge le and or not bool var``.

A rule is a mapping of one operator to its operands, e.g.::

    {"and": [{"eq": [{"var": "type"}, "com.event.workflow.workflow_finished"]},
             {"eq": [{"var": "data.workflow"}, "train"]}]}

``var`` reads a dot path from the event (a missing path reads as ``None``); a non-list operand
is treated as a one-element list; anything that is not a mapping is a literal.
"""

from __future__ import annotations

import operator
from functools import reduce
from typing import Any, Callable

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "lt": operator.lt,
    "ge": operator.ge,
    "le": operator.le,
}
OPERATORS = frozenset({*_BINARY, "and", "or", "not", "bool", "var"})


MAX_DEPTH = 32  # operators nested in operators
MAX_NODES = 1000  # operators and literals in one rule


def validate_condition(rule: Any, path: str = "rule") -> None:
    """Raise ``ValueError`` naming the path of the first malformed node of ``rule``, or saying the rule
    is nested deeper than :data:`MAX_DEPTH` or holds more than :data:`MAX_NODES` nodes (every event is
    evaluated against every condition: a rule must stay cheap)."""
    nodes, stack = 0, [(rule, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise ValueError(f"{path}: more than {MAX_NODES} operators and values")
        if isinstance(node, dict):
            if depth > MAX_DEPTH:
                raise ValueError(f"{path}: nested deeper than {MAX_DEPTH} levels")
            stack.extend((child, depth + 1) for operands in node.values()
                         for child in (operands if isinstance(operands, list) else [operands]))
    _validate_node(rule, path)


def _validate_node(rule: Any, path: str) -> None:
    if not isinstance(rule, dict):
        return
    if len(rule) != 1:
        raise ValueError(f"{path}: a condition node has exactly one operator, got {sorted(rule) or 'none'}")
    (op, operands), = rule.items()
    if op not in OPERATORS:
        raise ValueError(f"{path}: unknown operator '{op}' (known: {', '.join(sorted(OPERATORS))})")
    if op == "var":
        if not isinstance(operands, (str, list)) or (isinstance(operands, list) and not operands):
            raise ValueError(f"{path}.var: expected a dot path such as 'data.workflow'")
        return
    items = operands if isinstance(operands, list) else [operands]
    if op in _BINARY and len(items) != 2:
        raise ValueError(f"{path}.{op}: expects 2 operands, got {len(items)}")
    if op in ("not", "bool") and len(items) != 1:
        raise ValueError(f"{path}.{op}: expects 1 operand, got {len(items)}")
    if op in ("and", "or") and not items:
        raise ValueError(f"{path}.{op}: expects at least 1 operand")
    for index, item in enumerate(items):
        _validate_node(item, f"{path}.{op}[{index}]")


def _lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, (list, tuple)) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            data = getattr(data, part, None)
        if data is None:
            return None
    return data


def evaluate(rule: Any, data: dict[str, Any]) -> Any:
    """Evaluate ``rule`` against ``data`` (an event as a dict)."""
    if not isinstance(rule, dict):
        return rule
    (op, operands), = rule.items()
    if op == "var":
        path = operands[0] if isinstance(operands, list) else operands
        return _lookup(data, path)
    values = [evaluate(item, data) for item in (operands if isinstance(operands, list) else [operands])]
    if op in _BINARY:
        try:
            return _BINARY[op](values[0], values[1])
        except TypeError:  # e.g. None > 3: a missing field never matches an ordering
            return False
    if op == "and":
        return reduce(lambda a, b: bool(a) and bool(b), values, True)
    if op == "or":
        return reduce(lambda a, b: bool(a) or bool(b), values, False)
    if op == "not":
        return not values[0]
    return bool(values[0])
