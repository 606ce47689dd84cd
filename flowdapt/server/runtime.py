"""The server's runtime file, ``server.json`` in the app dir: how clients on this machine find it.

It holds the server's URL (with its base URL), its token and its pid; it is readable by the owner
only, written when the services start and removed when they stop. A file left by a killed server
is ignored once its pid is gone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RUNTIME_FILE = "server.json"


def runtime_path(app_dir: str | Path) -> Path:
    return Path(app_dir).expanduser() / RUNTIME_FILE


def write_runtime_file(app_dir: str | Path, url: str, token: str) -> Path:
    """Record this process as the server at ``url`` (mode 0600: it holds the token)."""
    path = runtime_path(app_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"url": url, "token": token, "pid": os.getpid()}, handle)
    tmp.replace(path)
    return path


def read_runtime_file(app_dir: str | Path) -> dict[str, Any] | None:
    """``{"url", "token", "pid"}`` of the server running for this app dir, or ``None``."""
    try:
        info = json.loads(runtime_path(app_dir).read_text(encoding="utf-8"))
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return info
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


def remove_runtime_file(app_dir: str | Path) -> None:
    """Remove the runtime file if this process wrote it."""
    info = read_runtime_file(app_dir)
    if info is not None and info.get("pid") == os.getpid():
        runtime_path(app_dir).unlink(missing_ok=True)
