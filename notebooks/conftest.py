"""The example notebooks run (``pytest --nbval-lax notebooks/``) against their own app dir and no server."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_app_dir = tempfile.mkdtemp(prefix="flowdapt-notebooks-")
atexit.register(shutil.rmtree, _app_dir, True)
os.environ["FLOWDAPT_APP_DIR"] = _app_dir  # inherited by the kernels nbval starts
os.environ.pop("FLOWDAPT_URL", None)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
