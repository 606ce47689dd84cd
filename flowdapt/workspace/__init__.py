"""Where ``flowctl`` and the ``%flowdapt`` magics work: a backend with one method per operation.

:class:`LocalBackend` works on the embedded store and runs workflows in this process;
:class:`HttpBackend` does the same through a server's REST API. :func:`connect` picks one, so the
commands never change: a server when one is named or running, else the process that holds (and
shares, see :mod:`flowdapt.workspace.sharing`) the embedded DuckDB store, else the store itself.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flowdapt.settings import Settings
from flowdapt.workspace.base import Backend
from flowdapt.workspace.http import HttpBackend
from flowdapt.workspace.local import LocalBackend

__all__ = ["Backend", "HttpBackend", "LocalBackend", "connect", "server_url"]


def server_url(explicit: str | None, settings: Settings | None = None) -> str | None:
    """The server to talk to: ``--server``, else ``FLOWDAPT_URL``, else the server running for the
    app dir (its runtime file); ``None`` means work locally."""
    url = explicit or os.environ.get("FLOWDAPT_URL") or None
    if url is None and settings is not None:
        from flowdapt.server.runtime import read_runtime_file

        info = read_runtime_file(settings.app_dir)
        url = info["url"] if info else None
    return url


LOCK_WAIT_SECONDS = 10.0  # how long to retry a DuckDB file another (short) command holds


def _local_or_holder(settings: Settings, share: str | None) -> "Backend | dict[str, Any]":
    """The local backend, or the runtime info of the process that holds and shares the store. A file held
    by a process that does not share it (a short command) is tried again for a few seconds."""
    from flowdapt.workspace.sharing import shared_store
    from flowdapt.history.errors import DatabaseLockedError

    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        holder = shared_store(settings.app_dir, settings.database_url())
        if holder is not None:
            return holder
        try:
            return LocalBackend(settings, share=share)
        except DatabaseLockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def connect(settings: Settings, server: str | None = None, *, share: str | None = None) -> Backend:
    """The backend for these settings: a server's if one is named or running, else that of the process
    sharing the embedded store it holds, else the local one (shared as ``share`` when it is given)."""
    url, token = server_url(server, settings), None
    if url is None:
        local = _local_or_holder(settings, share)
        if isinstance(local, Backend):
            return local
        url, token = local["url"], local["token"]
    return HttpBackend(url, settings, token=token)
