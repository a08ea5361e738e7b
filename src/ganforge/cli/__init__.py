"""Command-line entry points: ``train`` (Hydra app) and ``sample``."""
