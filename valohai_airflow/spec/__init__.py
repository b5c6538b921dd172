"""spec layer: the valohai.yaml format as typed models."""

from valohai_airflow.spec.commands import build_command, build_script
from valohai_airflow.spec.config import Config
from valohai_airflow.spec.deployment_defaults import Deployment, DeploymentDefaults
from valohai_airflow.spec.diagnostics import (
    Diagnostic,
    Diagnostics,
    Location,
    Severity,
    ValohaiSpecError,
)
from valohai_airflow.spec.endpoint import Endpoint, EndpointFile
from valohai_airflow.spec.input import Input
from valohai_airflow.spec.parameter import Parameter, ParameterValueError, coerce_parameter_value
from valohai_airflow.spec.parse import ParseResult, parse_file, parse_text
from valohai_airflow.spec.pipeline import (
    DeploymentNode,
    Edge,
    ExecutionNode,
    Node,
    NodeAction,
    Override,
    Pipeline,
    PipelineParameter,
    Socket,
    TaskNode,
)
from valohai_airflow.spec.step import EnvironmentVariable, Mount, Output, Step, StepResources
from valohai_airflow.spec.task import Task, VariantParameter, VariantParameterRules

__all__ = [
    "Config",
    "Deployment",
    "DeploymentDefaults",
    "DeploymentNode",
    "Diagnostic",
    "Diagnostics",
    "Edge",
    "Endpoint",
    "EndpointFile",
    "EnvironmentVariable",
    "ExecutionNode",
    "Input",
    "Location",
    "Mount",
    "Node",
    "NodeAction",
    "Output",
    "Override",
    "Parameter",
    "ParameterValueError",
    "ParseResult",
    "Pipeline",
    "PipelineParameter",
    "Severity",
    "Socket",
    "Step",
    "StepResources",
    "Task",
    "TaskNode",
    "ValohaiSpecError",
    "VariantParameter",
    "VariantParameterRules",
    "build_command",
    "build_script",
    "coerce_parameter_value",
    "parse_file",
    "parse_text",
]
