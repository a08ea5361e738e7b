"""ganforge: GAN experiments as the theory describes them (Lightning + Hydra)."""

__version__ = "0.1.0"
