"""The code in README.md and docs/ works as written, so it cannot rot.

The documents are read as one session, README first: a block whose first line is ``# name.ext`` is
written as that file into the session's folder (the current directory); other Python blocks run in
an IPython shell (magics work) in order; YAML blocks must load as resources (or, with top-level
settings sections, as ``flowdapt.yaml``); shell blocks are command synopses and run only when
marked ``<!-- docs-test: run -->``. ``<!-- docs-test: skip: why -->`` before a block skips it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from IPython import get_ipython
from IPython.testing.globalipapp import start_ipython

from flowdapt.resources.loading import loads
from flowdapt.settings import validate_settings

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"(?:<!-- docs-test: (?P<marker>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S)
FILE_LINE = re.compile(r"^# (?P<name>[\w.-]+\.(?:py|ya?ml|json))$")


@dataclass
class Block:
    document: Path
    line: int
    lang: str
    code: str
    marker: str

    def __str__(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text()
        for match in FENCE.finditer(text):
            found.append(Block(document, text[:match.start("code")].count("\n"), match["lang"], match["code"],
                               (match["marker"] or "").strip()))
    return found


def test_every_code_block_of_the_documentation_works(tmp_path, monkeypatch, flowdapt_app_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("FLOWDAPT_URL", raising=False)
    shell = start_ipython() or get_ipython()
    checked = 0
    try:
        for block in blocks():
            if block.marker.startswith("skip"):
                assert block.marker.startswith("skip: "), f"{block}: say why a block is skipped"
                continue
            first = block.code.splitlines()[0] if block.code.strip() else ""
            file = FILE_LINE.match(first)
            if file is not None:
                (tmp_path / file["name"]).write_text(block.code)
                if block.lang in ("yaml", "yml"):
                    assert loads(block.code, file=file["name"], check_targets=False), block
            elif block.lang == "python":
                outcome = shell.run_cell(block.code, store_history=False)
                assert outcome.success, f"{block} failed: {outcome.error_before_exec or outcome.error_in_exec!r}"
            elif block.lang in ("yaml", "yml"):
                _check_yaml(block)
            elif block.lang == "bash" and block.marker == "run":
                for line in block.code.splitlines():
                    command = line.split("#")[0].strip()
                    if command:
                        done = subprocess.run([str(Path(sys.executable).parent / shlex.split(command)[0]),
                                               *shlex.split(command)[1:]], capture_output=True, text=True,
                                              timeout=120)
                        assert done.returncode == 0, f"{block}: `{command}` failed: {done.stderr}"
            else:
                continue
            checked += 1
    finally:
        if "flowdapt" in shell.extension_manager.loaded:
            shell.run_line_magic("unload_ext", "flowdapt")
    assert checked >= 15


def _check_yaml(block: Block) -> None:
    documents = list(yaml.safe_load_all(block.code))
    if all(isinstance(document, dict) and "kind" in document for document in documents):
        assert loads(block.code, check_targets=False), block
    else:
        validate_settings(documents[0], source=str(block))
