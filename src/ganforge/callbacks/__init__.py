"""Lightning callbacks: sample grids/plots, the run config in checkpoints, atomic checkpoint writes."""

from ganforge.callbacks.checkpoint import AtomicCheckpointIO, CheckpointOnSigterm, RunConfigInCheckpoint
from ganforge.callbacks.metrics import GANMetrics
from ganforge.callbacks.progress import GANProgressBar
from ganforge.callbacks.samples import SamplePlotter

__all__ = ["AtomicCheckpointIO", "CheckpointOnSigterm", "GANMetrics", "GANProgressBar", "RunConfigInCheckpoint", "SamplePlotter"]
