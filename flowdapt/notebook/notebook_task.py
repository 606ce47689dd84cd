"""Running a notebook as a stage with papermill, on whatever worker the executor picked.

:class:`NotebookTask` is the stage's callable: invoke it like a function stage (it is cloudpickled
to threads, processes, Dask or Ray workers). It injects the parameters, a line that attaches the
run context, and ``fetch`` lines for values that travel through the object store; it writes the
output notebook (also on failure) and returns what the notebook passed to ``set_result``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle

from flowdapt.compute.context import RunContext, get_run_context
from flowdapt.errors import FlowdaptError
from flowdapt.notebook.stage_api import CONTEXT_ENV
from flowdapt.settings import get_settings

# Parameters larger than this (as Python source) travel through the object store.
MAX_LITERAL_CHARS = 64 * 1024
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NotebookExecutionError(FlowdaptError):
    """A cell of a notebook stage raised; the message names the notebook, the cell and the error."""

    def __init__(self, notebook: str, cell: int, execution_count: int | None, ename: str, evalue: str,
                 source: str = "", output_notebook: str = "") -> None:
        super().__init__(notebook, cell, execution_count, ename, evalue, source, output_notebook)
        self.notebook, self.cell, self.execution_count = notebook, cell, execution_count
        self.ename, self.evalue, self.source, self.output_notebook = ename, evalue, source, output_notebook

    def __str__(self) -> str:
        first = next((line for line in self.source.splitlines() if line.strip()), "")
        count = f" [{self.execution_count}]" if self.execution_count else ""
        return f"{self.notebook}: cell {self.cell}{count} `{first[:60]}` raised {self.ename}: {self.evalue}"


def parameter_name(name: str) -> str:
    """A stage or input name as a Python identifier (``load-data`` → ``load_data``)."""
    ident = re.sub(r"\W", "_", name)
    return f"_{ident}" if ident[:1].isdigit() else ident


def is_literal(value: Any) -> bool:
    """Whether papermill can write ``value`` as Python source that evaluates back to it."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, list):
        return all(is_literal(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and is_literal(item) for key, item in value.items())
    return False


def split_parameters(parameters: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(literal parameters, parameters that go through the object store)."""
    literal: dict[str, Any] = {}
    objects: dict[str, Any] = {}
    for name, value in parameters.items():
        small = is_literal(value) and len(repr(value)) <= MAX_LITERAL_CHARS
        (literal if small else objects)[name] = value
    return literal, objects


@dataclass(frozen=True)
class NotebookTask:
    """The callable of a notebook stage (see the module doc).

    Attributes
    ----------
    path : absolute path of the notebook (inside the workbench root)
    display : the stage's ``target`` as written, for messages
    dependencies : the stage's ``depends_on``; their outputs become parameters of those names
    parameters : fixed parameters from ``options.parameters`` (the run input overrides them)
    kernel_name : kernel to run (default: the notebook's kernelspec, else ``python3``)
    cell_timeout : seconds a cell may run (default: no limit)
    output_path : where the output notebook is written
    """

    path: str
    display: str
    output_path: str
    dependencies: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    kernel_name: str | None = None
    cell_timeout: float | None = None

    def __call__(self, *upstream: Any, **_input: Any) -> Any:
        context = get_run_context()
        parameters = {**self.parameters, **context.input}
        parameters.update(zip(self.dependencies, upstream))
        parameters = {parameter_name(name): value for name, value in parameters.items() if name}
        return self.execute(context, parameters)

    def execute(self, context: RunContext, parameters: dict[str, Any]) -> Any:
        """Run the notebook with ``parameters``; the value given to ``set_result`` (or ``None``)."""
        from flowdapt.compute import object_store

        output = Path(self.output_path)
        output.parent.mkdir(parents=True, exist_ok=True)
        context_file = output.with_suffix(".context.pkl")
        result_file = output.with_suffix(".result.pkl")
        result_file.unlink(missing_ok=True)
        literal, objects = split_parameters(parameters)
        keys = {name: f"notebook-parameters/{context.run.uid}/{context.stage}/{name}" for name in objects}
        for name, value in objects.items():
            object_store.put(keys[name], value, namespace=context.namespace, strategy="artifact")
        context_file.write_bytes(cloudpickle.dumps(
            {"context": context, "settings": get_settings(), "result_file": str(result_file)}))
        try:
            self._papermill(literal, keys, context_file)
        finally:
            context_file.unlink(missing_ok=True)
            for key in keys.values():
                object_store.delete(key, namespace=context.namespace, strategy="artifact")
        if not result_file.exists():
            return None
        value = cloudpickle.loads(result_file.read_bytes())
        result_file.unlink()
        return value

    def _papermill(self, literal: dict[str, Any], keys: dict[str, str], context_file: Path) -> None:
        # papermill (and nbclient, zmq) are imported here: a worker pays for them only when it
        # runs a notebook stage.
        import nbformat
        import papermill
        from nbclient.exceptions import CellTimeoutError
        from papermill.exceptions import PapermillExecutionError
        from papermill.iorw import load_notebook_node
        from papermill.parameterize import parameterize_notebook

        from flowdapt.notebook import warm_kernels  # with it, papermill's warm-kernel engine

        nb = load_notebook_node(self.path)
        spec = nb.metadata.get("kernelspec", {})
        kernel_name = self.kernel_name or spec.get("name") or "python3"
        language = spec.get("language") or nb.metadata.get("language_info", {}).get("name") or "python"
        nb = parameterize_notebook(nb, literal, kernel_name=kernel_name, language=language)
        injected = next(cell for cell in nb.cells if "injected-parameters" in cell.metadata.get("tags", []))
        folder = str(Path(self.path).parent)
        lines = [f"__import__('os').environ[{CONTEXT_ENV!r}] = {str(context_file)!r}  # injected by flowdapt"]
        lines += [f"{name} = __import__('flowdapt.notebook').notebook.fetch({key!r})" for name, key in keys.items()]
        injected.source = injected.source.rstrip("\n") + "\n" + "\n".join(lines) + "\n"
        kernel = _warm_kernel(kernel_name)
        engine = {"engine_name": warm_kernels.ENGINE, "kernel": kernel} if kernel is not None else {}
        succeeded = False
        try:
            if kernel is not None:
                kernel.connect(folder)
            papermill.execute_notebook(
                nb, self.output_path, kernel_name=kernel_name, language=language, progress_bar=False,
                execution_timeout=self.cell_timeout, resources={"metadata": {"path": folder}}, **engine,
            )
            succeeded = True
        except CellTimeoutError:
            index, source = _running_cell(self.output_path, nbformat)
            raise NotebookExecutionError(
                self.display, index, None, "CellTimeoutError", f"the cell ran longer than {self.cell_timeout:g}s "
                "(options.cell_timeout)", source, self.output_path) from None
        except PapermillExecutionError as exc:
            raise NotebookExecutionError(
                self.display, exc.cell_index, exc.exec_count, exc.ename, _ANSI.sub("", exc.evalue),
                exc.source, self.output_path,
            ).with_traceback(None) from _CellTraceback(_ANSI.sub("", "\n".join(exc.traceback)))
        finally:
            if kernel is not None:
                warm_kernels.kernel_pool().give_back(kernel, reusable=succeeded)
            _record_input_path(self.output_path, self.path, nbformat)
            _capture_cell_outputs(self.output_path, nbformat)


def _warm_kernel(kernel_name: str) -> Any:
    """A :class:`~flowdapt.notebook.warm_kernels.WarmKernel` from this process's pool, or None when the
    settings ask for a kernel started per run (papermill's own way)."""
    from flowdapt.notebook import warm_kernels

    settings = get_settings().notebook
    if settings.warm_kernels == 0 and settings.kernel_runs == 1:
        return None
    pool = warm_kernels.kernel_pool()
    pool.configure(settings.warm_kernels, settings.kernel_runs)
    return pool.take(kernel_name)


class _CellTraceback(Exception):
    """The kernel's traceback of the failing cell, chained under :class:`NotebookExecutionError`."""


def _running_cell(output_path: str, nbformat: Any) -> tuple[int, str]:
    """(index, source) of the cell papermill marked as running when execution stopped."""
    path = Path(output_path)
    if path.exists():
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.metadata.get("papermill", {}).get("status") == "running":
                return index, cell.source
    return -1, ""


def _capture_cell_outputs(output_path: str, nbformat: Any) -> None:
    """The cells' printed output and errors, as the stage's captured stdout and stderr."""
    from flowdapt.compute.logs import write_text

    path = Path(output_path)
    if not path.exists():
        return
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", ()):
            if output.get("output_type") == "stream":
                text = output.get("text", "")
                write_text("stderr" if output.get("name") == "stderr" else "stdout",
                           text if text.endswith("\n") else text + "\n")
            elif output.get("output_type") == "error":
                write_text("stderr", f"{output.get('ename')}: {_ANSI.sub('', output.get('evalue', ''))}\n")


def _record_input_path(output_path: str, input_path: str, nbformat: Any) -> None:
    # papermill records the NotebookNode it was given as ``input_path``: record the notebook's path.
    path = Path(output_path)
    if path.exists():
        nb = nbformat.read(path, as_version=4)
        nb.metadata.setdefault("papermill", {})["input_path"] = input_path
        nbformat.write(nb, path)

