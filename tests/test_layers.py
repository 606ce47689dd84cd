"""The packages' layers point one way: what each package may import of the others (imports inside
functions included), and that the rules the layers above register are in force however flowdapt is imported."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "flowdapt"

# What a package must never import, lazily or not: the layers above it.
FORBIDDEN = {
    "resources": {"compute", "triggers", "history", "server", "notebook", "workspace", "cli", "dashboard", "client",
                  "settings", "plugins", "events"},
    "units": {"*"},
    "errors": {"*"},
    "registry": {"*"},
    "events": {"compute", "triggers", "history", "server", "notebook", "workspace", "cli", "dashboard", "client"},
    "compute": {"triggers", "history", "server", "notebook", "workspace", "cli", "dashboard", "client"},
    "notebook": {"cli", "server"},
    "workspace": {"cli"},
    "server": {"cli"},
    "dashboard": {"cli", "server", "notebook"},
}
ALLOWED_BELOW = {"units": {"units"}, "errors": {"errors"}, "registry": {"registry", "errors"}}


def imports_of(package: str) -> set[tuple[str, str]]:
    """``(imported flowdapt package, importing module)`` for every import in ``package`` naming another one."""
    folder = PACKAGE / package
    files = sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{package}.py"]
    found = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "flowdapt" and len(parts) > 1 and parts[1] != package:
                    found.add((parts[1], str(file.relative_to(PACKAGE.parent))))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_of_the_layers_above_it(package):
    forbidden = FORBIDDEN[package]
    wrong = sorted((module, imported) for imported, module in imports_of(package)
                   if imported in forbidden or ("*" in forbidden and imported not in ALLOWED_BELOW[package]))
    assert not wrong, f"flowdapt.{package} imports layers above it: {wrong}"


def test_resources_loaded_in_a_fresh_process_are_checked_by_the_engine_and_the_trigger_service(tmp_path):
    """resources imports neither compute nor triggers, yet a load always runs their checks: a cycle and a cron
    that never fires are refused when nothing but ``flowdapt.resources`` was imported."""
    program = """
import sys
from flowdapt.errors import ResourceError
from flowdapt.resources import loads
for text in sys.argv[1:]:
    try:
        loads(text, file="f.yaml")
    except ResourceError as exc:
        print(exc)
"""
    cycle = ("kind: workflow\nmetadata: {name: w}\nspec: {stages: [{name: a, target: tests.stages.numbers, "
             "depends_on: [b]}, {name: b, target: tests.stages.numbers, depends_on: [a]}]}")
    never = ("kind: trigger_rule\nmetadata: {name: t}\nspec: {type: schedule, rule: ['0 0 30 2 *'], "
             "action: {target: run_workflow, params: {workflow: w}}}")
    out = subprocess.run([sys.executable, "-c", program, cycle, never], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout.splitlines()
    assert out[0].startswith("f.yaml: workflow/w: stage ") and "cycle" in out[0]
    assert out[1] == "f.yaml: trigger_rule/t: spec.rule: cron '0 0 30 2 *' never fires: no date matches it"
