"""The example notebooks run under nbval (``pytest --nbval-lax notebooks/``) as a user runs them.

By default, headless: their own app dir and no server, so the ``%flowdapt`` magics use the
embedded store. With ``FLOWDAPT_NOTEBOOKS_SERVER_URL`` (and ``..._TOKEN``, ``..._APP_DIR``) they run
in kernels configured as the ones Lab starts: ``FLOWDAPT_URL``/``FLOWDAPT_TOKEN`` point at that
server and the app dir is its own (``tests/test_example_notebooks.py`` does this against a live
``flowdapt serve``). A ``FLOWDAPT_URL`` inherited from a Lab terminal is never used.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
_server = os.environ.get("FLOWDAPT_NOTEBOOKS_SERVER_URL")
if _server:  # inherited by the kernels nbval starts
    os.environ.update(FLOWDAPT_URL=_server, FLOWDAPT_TOKEN=os.environ.get("FLOWDAPT_NOTEBOOKS_SERVER_TOKEN", ""),
                      FLOWDAPT_APP_DIR=os.environ["FLOWDAPT_NOTEBOOKS_SERVER_APP_DIR"])
else:
    _app_dir = tempfile.mkdtemp(prefix="flowdapt-notebooks-")
    atexit.register(shutil.rmtree, _app_dir, True)
    os.environ["FLOWDAPT_APP_DIR"] = _app_dir
    os.environ.pop("FLOWDAPT_URL", None)
    os.environ.pop("FLOWDAPT_TOKEN", None)
