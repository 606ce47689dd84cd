"""flowdapt: a notebook-centric workbench for adaptive ML workflows."""

import flowdapt.compute.validation  # noqa: F401 - registers the engine's checks of workflows
import flowdapt.triggers.validation  # noqa: F401 - registers the trigger service's checks of trigger rules
from flowdapt.compute import object_store
from flowdapt.compute.api import run_workflow
from flowdapt.compute.context import get_run_context
from flowdapt.resources import load
from flowdapt.notebook import load_ipython_extension, unload_ipython_extension
from flowdapt.notebook import install_in_kernel

install_in_kernel()

__version__ = "0.1.0"
__all__ = ["load", "run_workflow", "get_run_context", "object_store", "load_ipython_extension",
           "unload_ipython_extension", "Client", "__version__"]


def __getattr__(name: str):
    # Client imports httpx; it is loaded on first use.
    if name == "Client":
        from flowdapt.client import Client

        return Client
    raise AttributeError(f"module 'flowdapt' has no attribute '{name}'")


def _jupyter_server_extension_points() -> list[dict]:
    """The Jupyter server extension of this package (``jupyter server extension enable flowdapt``)."""
    from flowdapt.server.app import FlowdaptApp

    return [{"module": "flowdapt.server.app", "app": FlowdaptApp}]


def _jupyter_labextension_paths() -> list[dict]:
    """The prebuilt JupyterLab extension (``jupyter labextension develop .`` links it in development)."""
    return [{"src": "labextension", "dest": "@flowdapt/labextension"}]
