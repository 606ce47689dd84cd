"""``notebook_stage``: a one-cell parameterized notebook run 20× as a flowdapt stage vs raw papermill.

Every engine executes the same notebook with a new parameter per run, one run after another:

- raw ``papermill.execute_notebook`` (a kernel started per run);
- the flowdapt stage with ``notebook.warm_kernels: 0`` (a kernel started per run, papermill's way;
  target ≤ 1.1× raw);
- the default, one warm kernel: each run takes a kernel started ahead that no notebook ran in; timed
  with a 1.5 s pause (untimed) before each run, so the pool has refilled, as between triggered or
  interactive runs (target ≤ 150 ms); and back to back, where runs wait for the kernels starting;
- ``kernel_runs: 20``: one kernel reused, variables cleared between runs, back to back (≤ 150 ms).

Run ``python bench/notebook.py``; results go to ``bench/results/notebook.json``.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

RUNS = 20
RESULTS = Path(__file__).resolve().parent / "results" / "notebook.json"


def _notebook(folder: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("y = x * 2")]
    path = folder / "one_cell.ipynb"
    nbformat.write(nb, path)
    return path


def _time(function, runs: int, pause: float = 0.0) -> list[float]:
    function(0)  # warm-up: imports, first kernel start
    times = []
    for index in range(runs):
        time.sleep(pause)
        start = time.perf_counter()
        function(index)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    """Measure, print a table and write ``bench/results/notebook.json``."""
    import papermill

    import flowdapt
    from flowdapt.notebook.warm_kernels import close_kernel_pool
    from flowdapt.notebook.paths import set_workbench_root
    from flowdapt.settings import Settings, set_settings

    with tempfile.TemporaryDirectory(prefix="flowdapt-bench-") as tmp:
        folder = Path(tmp)
        notebook = _notebook(folder)
        set_workbench_root(folder)
        workflow = {"metadata": {"name": "bench-notebook"},
                    "spec": {"stages": [{"name": "one", "type": "notebook", "target": notebook.name}]}}

        def raw(index: int) -> None:
            papermill.execute_notebook(str(notebook), str(folder / f"raw-{index}.ipynb"), parameters={"x": index},
                                       progress_bar=False, kernel_name="python3")

        def stage(index: int) -> None:
            run = flowdapt.run_workflow(workflow, {"x": index}, executor="local")
            assert run.state == "finished", run.error

        def kernels(warm: int, runs: int) -> None:
            close_kernel_pool()
            set_settings(Settings(app_dir=folder / "app", notebook={"warm_kernels": warm, "kernel_runs": runs}))

        measured = {"papermill.execute_notebook": _time(raw, RUNS)}
        kernels(warm=0, runs=1)
        measured["flowdapt, kernel started per run"] = _time(stage, RUNS)
        kernels(warm=1, runs=1)
        measured["flowdapt, warm kernel, runs 1.5 s apart"] = _time(stage, RUNS, pause=1.5)
        measured["flowdapt, warm kernel, back to back"] = _time(stage, RUNS)
        kernels(warm=1, runs=RUNS + 1)
        measured[f"flowdapt, one kernel for {RUNS + 1} runs"] = _time(stage, RUNS)
        close_kernel_pool()
        set_workbench_root(None)
        set_settings(None)
    rows = []
    base = statistics.median(measured["papermill.execute_notebook"])
    for engine, times in measured.items():
        median = statistics.median(times)
        rows.append({"benchmark": "notebook_stage", "engine": engine, "runs": RUNS, "median_s": round(median, 4),
                     "mean_s": round(statistics.mean(times), 4), "min_s": round(min(times), 4),
                     "ratio_to_papermill": round(median / base, 3)})
    print(f"{'benchmark':<16}{'engine':<42}{'median ms':>10}{'mean ms':>10}{'min ms':>10}{'ratio':>8}")
    for row in rows:
        print(f"{row['benchmark']:<16}{row['engine']:<42}{row['median_s'] * 1000:>10.1f}{row['mean_s'] * 1000:>10.1f}"
              f"{row['min_s'] * 1000:>10.1f}{row['ratio_to_papermill']:>8.3f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"cpus": os.cpu_count(), "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
