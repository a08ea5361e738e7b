"""Generators and discriminators: plain ``nn.Module``s that know nothing of losses or Lightning.

Contract: a generator has ``latent_dim`` and maps z [B, latent_dim] to samples [B, *out_shape];
a discriminator maps samples [B, *in_shape] to logits [B // pack] (one per packed group).
"""

from ganforge.models.dcgan import DCGANDiscriminator, DCGANGenerator
from ganforge.models.mlp import MLPDiscriminator, MLPGenerator

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator"]
