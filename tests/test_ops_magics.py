"""``%flowdapt logs``, ``rerun`` and ``retry`` in a real IPython shell on the embedded store."""

from __future__ import annotations

import pytest

from flowdapt.notebook.magics import RunEndedError
from tests.test_magics import flowdapt_shell  # noqa: F401 - fixture

RESOURCES = """kind: workflow
metadata: {name: resumable}
spec:
  stages:
    - {name: prepare, target: tests.ops_stages.prepare, options: {keep_output: true}}
    - {name: total, target: tests.ops_stages.total_unless_flagged, depends_on: [prepare]}
---
kind: workflow
metadata: {name: chatty}
spec:
  stages: [{name: make, target: tests.ops_stages.chatty}]
"""


def test_logs_rerun_and_retry_magics(flowdapt_shell, tmp_path):
    shell = flowdapt_shell
    (tmp_path / "flows.yaml").write_text(RESOURCES)
    shell.run_line_magic("flowdapt", f"apply {tmp_path / 'flows.yaml'}")
    chatty = shell.run_line_magic("flowdapt", "run chatty --n 2")
    lines = shell.run_line_magic("flowdapt", f"logs {chatty.name}")
    assert [line.message for line in lines][:2] == ["hello from local", "to stderr"]
    assert "make WARNING tests.ops: careful: 2 items" in repr(lines) and lines._repr_html_().startswith("<pre>")
    again = shell.run_line_magic("flowdapt", f"rerun {chatty.name}")
    assert again.rerun_of == chatty.uid and again.state == "finished"
    flag = tmp_path / "flag"
    flag.touch()
    result = shell.run_cell(f"%flowdapt run resumable --n 3 --flag {flag}")
    assert isinstance(result.error_in_exec, RunEndedError)
    failed = result.error_in_exec.run
    flag.unlink()
    resumed = shell.run_line_magic("flowdapt", f"retry {failed.name}")
    assert (resumed.state, resumed.result, resumed.resumed_from) == ("finished", 3, failed.uid)
    assert resumed.stage("prepare").state == "cached"
    with pytest.raises(Exception, match="only failed, cancelled or interrupted runs can be resumed"):
        shell.run_line_magic("flowdapt", f"retry {resumed.name}")
