"""A BigGAN-style generator conditioned on an instance feature (IC-GAN's form).

What is faithful to the IC-GAN BigGAN that Sound2Scene decodes with
(`icgan_biggan_imagenet_res128`, config facts from kaist-ami/Sound2Scene and IC-GAN's
published config: G_ch 96, dim_z 120, hierarchical z, shared_dim_feat 512,
attention at 64x64, no class conditioning):
  * the residual up-sampling blocks (BN-ReLU-up-conv-BN-ReLU-conv plus a 1x1
    shortcut), their channel plan per resolution, the SA-GAN attention block,
    the BN-ReLU-conv-tanh output layer;
  * hierarchical z: one chunk feeds the first linear layer, one chunk per
    block is concatenated to the projected feature to drive that block's
    conditional-BN gains (1 + W y) and biases (W y);
  * spectral normalisation as BigGAN computes it: the weight divided by a
    singular value estimated with one power iteration from the stored `u0`
    (updated only in training mode), so the stored `u0`/`sv0` buffers matter;
  * parameter and buffer names, so an official `G_ema_best*.pth` maps key by key
    (its unused class-embedding table `shared.weight` is deliberately dropped).
What is not: BigGAN's optional cross-replica/"my" batch-norm variants, fp16
paths, the discriminator and all of the GAN training machinery. The
synthetic-world generators use the same module at small width, without
spectral norm or attention, trained by regression (see image_stage.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# (in-channel multipliers, out-channel multipliers) of the blocks per output resolution
CHANNEL_PLAN = {
    128: ((16, 16, 8, 4, 2), (16, 8, 4, 2, 1)),
    64: ((16, 16, 8, 4), (16, 8, 4, 2)),
    32: ((4, 4, 4), (4, 4, 4)),
}
DROPPED_OFFICIAL_KEYS = ("shared.weight",)  # IC-GAN's class table, unused without class conditioning


@dataclass(frozen=True)
class GeneratorConfig:
    resolution: int = 128
    ch: int = 96
    dim_z: int = 120
    feature_dim: int = 2048  # instance feature (SwAV ResNet-50 pooled feature in IC-GAN)
    shared_dim_feat: int = 512
    attention: tuple[int, ...] = (64,)
    spectral_norm: bool = True
    bottom_width: int = 4
    bn_eps: float = 1e-5
    sn_eps: float = 1e-12

    @property
    def num_blocks(self) -> int:
        return len(CHANNEL_PLAN[self.resolution][0])

    @property
    def z_chunk(self) -> int:
        return self.dim_z // (self.num_blocks + 1)


PAPER_GENERATOR = GeneratorConfig()


class _SpectralNorm:
    """Mixin: weight / (top singular value by one power-iteration step from `u0`)."""

    def _init_sn(self, outputs: int, eps: float) -> None:
        self.sn_eps = eps
        self.register_buffer("u0", torch.randn(1, outputs))
        self.register_buffer("sv0", torch.ones(1))

    def normalised_weight(self) -> torch.Tensor:
        matrix = self.weight.reshape(self.weight.shape[0], -1)
        with torch.no_grad():
            v = F.normalize(self.u0 @ matrix, eps=self.sn_eps)
            u = F.normalize(v @ matrix.t(), eps=self.sn_eps)
            if self.training:
                self.u0.copy_(u)
        sigma = torch.squeeze((v @ matrix.t()) @ u.t())
        if self.training:
            with torch.no_grad():
                self.sv0.copy_(sigma.detach().reshape(1))
        return self.weight / sigma


class SNLinear(nn.Linear, _SpectralNorm):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, eps: float = 1e-12):
        nn.Linear.__init__(self, in_features, out_features, bias)
        self._init_sn(out_features, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalised_weight(), self.bias)


class SNConv2d(nn.Conv2d, _SpectralNorm):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        bias: bool = True,
        eps: float = 1e-12,
    ):
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self._init_sn(out_channels, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.normalised_weight(), self.bias, padding=self.padding)


class _Layers:
    """Builds linear/conv layers with or without spectral norm."""

    def __init__(self, config: GeneratorConfig):
        self.sn, self.eps = config.spectral_norm, config.sn_eps

    def linear(self, n_in: int, n_out: int, bias: bool = True) -> nn.Linear:
        return SNLinear(n_in, n_out, bias, self.eps) if self.sn else nn.Linear(n_in, n_out, bias)

    def conv(self, n_in: int, n_out: int, kernel: int = 3, bias: bool = True) -> nn.Conv2d:
        pad = kernel // 2
        return (
            SNConv2d(n_in, n_out, kernel, pad, bias, self.eps)
            if self.sn
            else nn.Conv2d(n_in, n_out, kernel, padding=pad, bias=bias)
        )


class ConditionalBN(nn.Module):
    """Batch norm without affine terms, then per-sample gain 1 + W_g y and bias W_b y."""

    def __init__(self, channels: int, cond_dim: int, layers: _Layers, eps: float):
        super().__init__()
        self.gain = layers.linear(cond_dim, channels, bias=False)
        self.bias = layers.linear(cond_dim, channels, bias=False)
        self.eps = eps
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = F.batch_norm(x, self.stored_mean, self.stored_var, None, None, self.training, 0.1, self.eps)
        return torch.addcmul(self.bias(y)[:, :, None, None], out, (1 + self.gain(y))[:, :, None, None])


class OutputBN(nn.Module):
    """Plain batch norm with BigGAN's parameter names (gain, bias, stored_mean, stored_var)."""

    def __init__(self, channels: int, eps: float):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.stored_mean, self.stored_var, self.gain, self.bias, self.training, 0.1, self.eps)


class GBlock(nn.Module):
    def __init__(self, n_in: int, n_out: int, cond_dim: int, layers: _Layers, eps: float):
        super().__init__()
        self.conv1 = layers.conv(n_in, n_out)
        self.conv2 = layers.conv(n_out, n_out)
        self.conv_sc = layers.conv(n_in, n_out, kernel=1)  # every block up-samples, so the shortcut is learnt
        self.bn1 = ConditionalBN(n_in, cond_dim, layers, eps)
        self.bn2 = ConditionalBN(n_out, cond_dim, layers, eps)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + F.interpolate(self.conv_sc(x), scale_factor=2)  # a 1x1 conv commutes with nearest up-sampling


class Attention(nn.Module):
    """SA-GAN non-local block with max-pooled keys and values, gated by `gamma` (starts at 0)."""

    def __init__(self, ch: int, layers: _Layers):
        super().__init__()
        self.ch = ch
        self.theta = layers.conv(ch, ch // 8, kernel=1, bias=False)
        self.phi = layers.conv(ch, ch // 8, kernel=1, bias=False)
        self.g = layers.conv(ch, ch // 2, kernel=1, bias=False)
        self.o = layers.conv(ch // 2, ch, kernel=1, bias=False)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        batch, _, height, width = x.shape
        theta = self.theta(x).flatten(2)
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)
        g = F.max_pool2d(self.g(x), 2).flatten(2)
        beta = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)
        out = self.o((g @ beta.transpose(1, 2)).view(batch, self.ch // 2, height, width))
        return self.gamma * out + x


class BigGANGenerator(nn.Module):
    """(z [B, dim_z], feature [B, feature_dim]) -> image [B, 3, R, R] in [-1, 1]."""

    def __init__(self, config: GeneratorConfig = PAPER_GENERATOR):
        super().__init__()
        self.config = config
        layers = _Layers(config)
        ins, outs = CHANNEL_PLAN[config.resolution]
        chunk = config.z_chunk
        self.dim_z = chunk * (config.num_blocks + 1)
        cond_dim = chunk + config.shared_dim_feat
        self.shared_feat = layers.linear(config.feature_dim, config.shared_dim_feat)
        self.linear = layers.linear(chunk, ins[0] * config.ch * config.bottom_width**2)
        blocks = []
        for index, (m_in, m_out) in enumerate(zip(ins, outs, strict=True)):
            stage = [GBlock(m_in * config.ch, m_out * config.ch, cond_dim, layers, config.bn_eps)]
            if config.bottom_width * 2 ** (index + 1) in config.attention:
                stage.append(Attention(m_out * config.ch, layers))
            blocks.append(nn.ModuleList(stage))
        self.blocks = nn.ModuleList(blocks)
        self.output_layer = nn.Sequential(
            OutputBN(outs[-1] * config.ch, config.bn_eps), nn.ReLU(), layers.conv(outs[-1] * config.ch, 3)
        )

    def init_orthogonal(self) -> "BigGANGenerator":
        """BigGAN's weight initialisation, for training (slow at paper scale, so never done on load)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.orthogonal_(module.weight)
        return self

    def forward(self, z: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        y = self.shared_feat(feature)
        chunks = torch.split(z, self.config.z_chunk, dim=1)
        h = self.linear(chunks[0]).view(z.shape[0], -1, self.config.bottom_width, self.config.bottom_width)
        for stage, z_part in zip(self.blocks, chunks[1:], strict=False):
            cond = torch.cat([y, z_part], dim=1)
            for block in stage:
                h = block(h, cond)
        return torch.tanh(self.output_layer(h))
