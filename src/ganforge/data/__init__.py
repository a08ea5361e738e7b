"""LightningDataModules: in-memory toys, small image sets and the standard image datasets (``dataset=`` in the config)."""

from ganforge.data.base import InMemoryDataModule, TensorBatches
from ganforge.data.images import DigitsDataModule
from ganforge.data.toy import Gaussian1DDataModule, Grid25DataModule, Ring8DataModule
from ganforge.data.vision import (
    CelebADataModule,
    CIFAR10DataModule,
    DatasetUnavailable,
    FashionMNISTDataModule,
    ImageFolderDataModule,
    MNISTDataModule,
    StackedMNISTDataModule,
)

__all__ = [
    "CIFAR10DataModule",
    "CelebADataModule",
    "DatasetUnavailable",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "Gaussian1DDataModule",
    "Grid25DataModule",
    "ImageFolderDataModule",
    "InMemoryDataModule",
    "MNISTDataModule",
    "Ring8DataModule",
    "StackedMNISTDataModule",
    "TensorBatches",
]
