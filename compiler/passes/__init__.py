"""Graph passes, one per module, each a `Graph -> Graph` rewrite in place;
`manager.optimize` runs them by optimisation level."""

from .manager import LEVELS, PASSES, PassError, PassRecord, Report, describe_pipeline, optimize, pipeline

__all__ = ["LEVELS", "PASSES", "PassError", "PassRecord", "Report", "describe_pipeline", "optimize", "pipeline"]
