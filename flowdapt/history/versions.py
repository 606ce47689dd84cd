"""The workflow a recorded run ran: its version's document, kept in the history when the run started."""

from __future__ import annotations

from flowdapt.errors import OperationError
from flowdapt.resources.loading import parse_resource
from flowdapt.resources.models import Workflow, WorkflowRun


def ran_workflow(run: WorkflowRun, document: dict | None, current: Workflow | None) -> Workflow:
    """The workflow ``run`` ran: the ``document`` of its version (from the history), else the ``current``
    definition when it is that version or the run predates versions.

    Raises :class:`OperationError` when the workflow changed since and the history lacks the old version.
    """
    if document is not None:
        return parse_resource(document, check_targets=False)  # type: ignore[return-value]
    if current is None:
        raise OperationError(f"workflow '{run.workflow}' of run '{run.name}' was deleted, and the history does "
                             "not hold the version the run ran")
    workflow = current
    if run.workflow_version is None:
        return workflow
    from flowdapt.compute.api import spec_version

    if spec_version(workflow) != run.workflow_version:
        raise OperationError(f"run '{run.name}' ran version {run.workflow_version} of workflow '{run.workflow}', "
                             "which has changed since and whose definition the history does not hold")
    return workflow
