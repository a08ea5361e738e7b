"""LightningDataModules: in-memory toys and small image sets (``dataset=`` in the config)."""

from ganforge.data.base import InMemoryDataModule, TensorBatches
from ganforge.data.images import DigitsDataModule
from ganforge.data.toy import Gaussian1DDataModule, Grid25DataModule, Ring8DataModule

__all__ = [
    "DigitsDataModule",
    "Gaussian1DDataModule",
    "Grid25DataModule",
    "InMemoryDataModule",
    "Ring8DataModule",
    "TensorBatches",
]
