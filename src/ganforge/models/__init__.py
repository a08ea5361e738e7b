"""Generators and discriminators: plain ``nn.Module``s that know nothing of losses or Lightning.

Contract: a generator has ``latent_dim`` (and optionally ``latent_dist``, its prior: "normal" or "uniform"; draw z
with ``sample_latent``) and maps z [B, latent_dim] to samples [B, *out_shape];
a discriminator maps samples [B, *in_shape] to logits [B // pack] (one per packed group).
"""

from ganforge.models.common import sample_latent
from ganforge.models.dcgan import DCGANDiscriminator, DCGANGenerator
from ganforge.models.mlp import MLPDiscriminator, MLPGenerator

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator", "sample_latent"]
