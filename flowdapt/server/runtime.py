"""Runtime files in the app dir: how clients on this machine find the process that serves it.

``server.json`` is the server's (its URL with its base URL, its token and its pid); ``store.json``
is that of a process sharing the embedded store it holds (:mod:`flowdapt.workspace.sharing`). They are
readable by the owner only, written when serving starts and removed when it stops. A file left by
a killed process is ignored once its pid is gone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RUNTIME_FILE = "server.json"


def runtime_path(app_dir: str | Path, name: str = RUNTIME_FILE) -> Path:
    return Path(app_dir).expanduser() / name


def write_runtime_file(app_dir: str | Path, url: str, token: str, *, name: str = RUNTIME_FILE,
                       extra: dict[str, Any] | None = None) -> Path:
    """Record this process as the one serving at ``url`` (mode 0600: it holds the token)."""
    path = runtime_path(app_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({**(extra or {}), "url": url, "token": token, "pid": os.getpid()}, handle)
    tmp.replace(path)
    return path


def read_runtime_file(app_dir: str | Path, name: str = RUNTIME_FILE) -> dict[str, Any] | None:
    """``{"url", "token", "pid", ...}`` of the process serving this app dir, or ``None``."""
    try:
        info = json.loads(runtime_path(app_dir, name).read_text(encoding="utf-8"))
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return info
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


def remove_runtime_file(app_dir: str | Path, name: str = RUNTIME_FILE) -> None:
    """Remove the runtime file if this process wrote it."""
    info = read_runtime_file(app_dir, name)
    if info is not None and info.get("pid") == os.getpid():
        runtime_path(app_dir, name).unlink(missing_ok=True)
