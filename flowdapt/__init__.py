"""flowdapt: a notebook-centric workbench for adaptive ML workflows."""

from flowdapt.compute import object_store
from flowdapt.compute.api import run_workflow
from flowdapt.compute.context import get_run_context
from flowdapt.resources import load
from flowdapt.notebook import load_ipython_extension, unload_ipython_extension
import flowdapt.notebook.stage  # noqa: F401,E402 - registers the ``notebook`` stage type

__version__ = "0.1.0"
__all__ = ["load", "run_workflow", "get_run_context", "object_store", "load_ipython_extension",
           "unload_ipython_extension", "__version__"]
