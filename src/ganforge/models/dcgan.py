"""DCGAN (Radford et al. 2016) for square power-of-two images, any channel count.

G: z -> 4x4 feature map (transposed conv) -> doubling stages (ConvT 4/2/1 + BatchNorm + ReLU) -> tanh.
D: the mirror: strided convs 4/2/1 + LeakyReLU(0.2) (no norm on the first), down to 4x4, then a 4x4 conv
to one logit. Widths halve towards the image: ``base_width`` at the image end, as in the paper (64).
Resolution and channels come from the dataset's shape; nothing here knows dataset names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from ganforge.models.common import apply_spectral_norm, check_latent_dist, check_pack, dcgan_init, pack


def _check_image_shape(shape: Sequence[int], who: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(
            f"{who} needs image data of shape [C, H, W], got shape {list(shape)}: use model=mlp for vector data"
        )
    c, h, w = (int(s) for s in shape)
    if h != w or h < 8 or h & (h - 1):
        raise ValueError(
            f"{who} needs a square power-of-two resolution >= 8, got {h}x{w}: "
            "set dataset.resolution to 32 or 64 (or 16, 128, ...)"
        )
    return c, h, w


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{kind}': choose batch, layer or none")


class DCGANGenerator(nn.Module):
    """z [B, latent_dim] -> images [B, C, R, R] in [-1, 1]."""

    def __init__(self, latent_dim: int, out_shape: Sequence[int], base_width: int = 64, latent_dist: str = "normal") -> None:
        super().__init__()
        channels, res, _ = _check_image_shape(out_shape, "model=dcgan (generator)")
        self.latent_dim = int(latent_dim)
        self.latent_dist = check_latent_dist(latent_dist)
        self.out_shape = (channels, res, res)
        n_up = int(math.log2(res)) - 2  # 4x4 -> res
        width = base_width * 2 ** (n_up - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(self.latent_dim, width, 4, 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
        ]
        for _ in range(n_up - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.reshape(z.shape[0], self.latent_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """images [B, C, R, R] -> logits [B // pack].

    ``norm``: ``batch`` (the paper), ``layer`` or ``none`` (use none/layer with a gradient penalty, whose
    per-sample gradients BatchNorm would mix across the batch).
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        base_width: int = 64,
        pack: int = 1,
        spectral_norm: bool = False,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        channels, res, _ = _check_image_shape(in_shape, "model=dcgan (discriminator)")
        self.in_shape = (channels, res, res)
        self.pack = check_pack(pack)
        n_down = int(math.log2(res)) - 2  # res -> 4x4
        width = base_width
        layers: list[nn.Module] = [nn.Conv2d(channels * self.pack, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for _ in range(n_down - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), _norm(norm, width * 2), nn.LeakyReLU(0.2, True)]
            width *= 2
        layers.append(nn.Conv2d(width, 1, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)
        dcgan_init(self)
        if spectral_norm:
            apply_spectral_norm(self.net)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(pack(x, self.pack)).reshape(-1)
