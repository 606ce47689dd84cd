"""Run the benchmarks in ``bench/``: every module with a no-argument ``main()``, or those named.

Usage: ``python bench/run.py`` (all) or ``python bench/run.py engine history_write`` (a subset).
Modules whose name starts with ``_`` are helpers, not benchmarks. Exit status 1 if a benchmark
raised or a named one does not exist.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ("engine", "executors", "history_write", "history_query", "dashboard")


def available() -> list[str]:
    """Benchmark modules present in ``bench/``: the known ones first, then any others by name."""
    found = {path.stem for path in HERE.glob("*.py") if not path.stem.startswith("_") and path.stem != "run"}
    return [name for name in ORDER if name in found] + sorted(found.difference(ORDER))


def main(names: list[str] | None = None) -> int:
    """Run the named benchmark modules (default: all) and return the exit status."""
    sys.path.insert(0, str(HERE))
    present = available()
    unknown = [name for name in names or [] if name not in present]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)} (available: {', '.join(present)})", file=sys.stderr)
        return 1
    failed = []
    for name in names or present:
        print(f"\n=== bench/{name}.py ===", flush=True)
        try:
            importlib.import_module(name).main()
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            traceback.print_exc()
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
