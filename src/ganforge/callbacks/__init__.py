"""Lightning callbacks: sample grids/plots, metrics, the run report, the run config in checkpoints, atomic checkpoint writes."""

from ganforge.callbacks.checkpoint import AtomicCheckpointIO, CheckpointOnSigterm, IterationCheckpoint, RunConfigInCheckpoint
from ganforge.callbacks.metrics import GANMetrics
from ganforge.callbacks.progress import GANProgressBar
from ganforge.callbacks.report import RunReport
from ganforge.callbacks.samples import SamplePlotter

__all__ = ["AtomicCheckpointIO", "CheckpointOnSigterm", "GANMetrics", "GANProgressBar", "IterationCheckpoint", "RunConfigInCheckpoint", "RunReport", "SamplePlotter"]
