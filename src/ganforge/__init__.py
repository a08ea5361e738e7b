"""ganforge: GAN experiments as the theory describes them (Lightning + Hydra)."""

from ganforge.config import register_resolvers

register_resolvers()  # the configs' interpolations (``${mul:...}``) resolve wherever ganforge is imported

__version__ = "0.1.0"
