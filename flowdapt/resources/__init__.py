"""Resources: models, loading and validation."""

from flowdapt.resources.loading import dumps, load, loads, parse_resource
from flowdapt.resources.models import (
    RESOURCE_KINDS,
    Config,
    ErrorInfo,
    ItemFailure,
    Resource,
    StageRun,
    TriggerRule,
    Workflow,
    WorkflowRun,
    WorkflowStage,
)
from flowdapt.units import parse_bytes

__all__ = ["load", "loads", "dumps", "parse_resource", "Resource", "Workflow", "WorkflowStage", "Config",
           "TriggerRule", "WorkflowRun", "StageRun", "ErrorInfo", "ItemFailure", "RESOURCE_KINDS", "parse_bytes"]
