"""The package of stage modules written by ``%%flowdapt stage``.

Its ``__path__`` is read on every import from the settings in force (``<app_dir>/stages``), so
any worker that received the run's settings (threads, processes, Dask, Ray) imports the module
without ``sys.path`` changes, even when the app dir changes within one process.
"""

from __future__ import annotations

from typing import Iterator


class _StageDirs:
    """A dynamic ``__path__``: the current settings' stage folder."""

    def __iter__(self) -> Iterator[str]:
        from flowdapt.notebook.paths import stage_modules_dir

        return iter([str(stage_modules_dir())])

    def __len__(self) -> int:
        return 1

    def __repr__(self) -> str:
        return f"_StageDirs({list(self)})"


__path__ = _StageDirs()  # type: ignore[assignment]
