"""The assistance policy as dated, referenced data (parameters/ *.yaml); see docs/policy.md."""

from verification.assessment.policy._tree import (
    DEFAULT_DIRECTORY,
    OVERLAY_ENV,
    ParameterError,
    ParameterTree,
    Policy,
    Reference,
    load_parameters,
    region_chain,
    use_overlay,
)

__all__ = [
    "DEFAULT_DIRECTORY",
    "OVERLAY_ENV",
    "ParameterError",
    "ParameterTree",
    "Policy",
    "Reference",
    "load_parameters",
    "region_chain",
    "use_overlay",
]
