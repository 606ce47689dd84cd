"""Stages of the tests of day-to-day operations (logs, rerun, resume, cache): importable by process
and cluster workers. Stages that count their calls append a line to the file named by the run input's
``marker``, which every worker of these tests can reach."""

import logging
import os
import sys

from flowdapt import get_run_context
from flowdapt.compute.logs import get_run_logger


def _called(name: str) -> None:
    marker = get_run_context().input.get("marker")
    if marker:
        with open(marker, "a") as out:
            out.write(f"{name}\n")


def calls(marker: str) -> list[str]:
    """The stages that ran, in the order they were called."""
    return open(marker).read().split() if os.path.exists(marker) else []


def chatty(n: int = 3):
    """Prints to stdout and stderr, logs a warning and an info record, returns ``list(range(n))``."""
    print(f"hello from {get_run_context().executor}")
    print("to stderr", file=sys.stderr)
    logging.getLogger("tests.ops").warning("careful: %d items", n)
    get_run_logger().info("info through the run logger")
    sys.stdout.write("no newline at the end")
    return list(range(n))


def chatty_item(x):
    print(f"item {x}")
    return x * 10


def chatty_total(values):
    print(f"total {sum(values)}")
    return sum(values)


def print_lines(count: int = 10, width: int = 50):
    for index in range(count):
        print(f"line {index:06d} " + "x" * width)
    return count


def print_then_fail(*_):
    print("about to fail")
    raise RuntimeError("it failed after printing")


def prepare(n: int = 3, marker: str = "", flag: str = ""):
    _called("prepare")
    return list(range(n))


def square_unless_flagged(x):
    """Fails on odd items while the input's ``flag`` file exists."""
    _called(f"square-{x}")
    flag = get_run_context().input.get("flag")
    if flag and os.path.exists(flag) and x % 2:
        raise ValueError(f"item {x} failed: flag is up")
    return x * x


def total_unless_flagged(values):
    _called("total")
    flag = get_run_context().input.get("flag")
    if flag and os.path.exists(flag):
        raise ValueError("total failed: flag is up")
    return sum(values)


def expensive(n: int = 3, marker: str = "", flag: str = ""):
    _called("expensive")
    return n * 100


def plus_one(value):
    _called("plus_one")
    return value + 1


def double_item(x):
    _called(f"double-{x}")
    return x * 2


def key_by_n(n: int = 3, marker: str = "", flag: str = ""):
    """A cache key function: only ``n`` matters."""
    return f"n={n}"


def logical_time_of(**_):
    """The run's logical time as ISO 8601 (None outside scheduled and backfilled runs)."""
    when = get_run_context().logical_time
    return when.isoformat() if when else None


def attempt_number(**_):
    return get_run_context().attempt


def talk_then_sleep(*_):
    """Prints a line, then sleeps the input's ``seconds`` (1.5 by default)."""
    import time

    print("early line")
    seconds = get_run_context().input.get("seconds", 1.5)
    time.sleep(seconds)
    return seconds
