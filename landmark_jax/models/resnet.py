"""The residual backbone family: bottleneck ResNets, wide ResNets and SE-ResNeXt.

One configurable `ResNet` class; the zoo is `functools.partial` aliases, as in Flax's
ImageNet example. Layer names mirror torchvision/timm module names (``layer1_0/conv1`` is
``layer1.0.conv1``) so that `pretrained.py` can map a PyTorch state dict one-to-one.

Layout is NHWC. Convolutions use PyTorch's explicit padding (3 for the 7x7 stem, 1 for the
3x3 convs, stride on the 3x3 conv as in torchvision's "ResNet v1.5"), so outputs match the
reference implementations exactly, not merely in shape.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

ModuleDef = Any

# PyTorch BatchNorm defaults: eps 1e-5, running-stat momentum 0.1 (Flax counts the other way).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


class SqueezeExcite(nn.Module):
  """timm's SEModule: global pool → 1x1 conv (bias) → ReLU → 1x1 conv (bias) → sigmoid gate."""

  reduced_channels: int
  conv: ModuleDef

  @nn.compact
  def __call__(self, x):
    squeezed = jnp.mean(x, axis=(1, 2), keepdims=True)
    squeezed = self.conv(self.reduced_channels, (1, 1), use_bias=True, name="fc1")(squeezed)
    squeezed = nn.relu(squeezed)
    squeezed = self.conv(x.shape[-1], (1, 1), use_bias=True, name="fc2")(squeezed)
    return x * nn.sigmoid(squeezed)


class BottleneckBlock(nn.Module):
  """1x1 → 3x3 (stride, groups) → 1x1 (×4 channels), optional SE, projection shortcut."""

  planes: int  # the block's nominal width; its output has 4 × planes channels
  inner_width: int  # channels of the 3x3 conv: planes for ResNet, 2×planes for WRN-50-2, …
  conv: ModuleDef
  norm: ModuleDef
  strides: int = 1
  groups: int = 1
  se_reduction: int | None = None  # SE bottleneck ratio (timm: 16); None disables SE
  project_shortcut: bool = False
  zero_init_last_norm: bool = True

  @nn.compact
  def __call__(self, x):
    out_channels = self.planes * 4
    y = self.conv(self.inner_width, (1, 1), name="conv1")(x)
    y = nn.relu(self.norm(name="bn1")(y))
    y = self.conv(
      self.inner_width,
      (3, 3),
      strides=(self.strides, self.strides),
      padding=((1, 1), (1, 1)),
      feature_group_count=self.groups,
      name="conv2",
    )(y)
    y = nn.relu(self.norm(name="bn2")(y))
    y = self.conv(out_channels, (1, 1), name="conv3")(y)
    # Starting each residual branch at zero makes the block an identity at init, which
    # trains deep ResNets more stably (Goyal et al. 2017); imported weights overwrite it.
    scale_init = nn.initializers.zeros if self.zero_init_last_norm else nn.initializers.ones
    y = self.norm(name="bn3", scale_init=scale_init)(y)
    if self.se_reduction is not None:
      y = SqueezeExcite(out_channels // self.se_reduction, conv=self.conv, name="se")(y)
    shortcut = x
    if self.project_shortcut:
      shortcut = self.conv(
        out_channels, (1, 1), strides=(self.strides, self.strides), name="downsample_0"
      )(x)
      shortcut = self.norm(name="downsample_1")(shortcut)
    return nn.relu(y + shortcut)


class ResNet(nn.Module):
  """A bottleneck ResNet without its classifier: image (N, H, W, 3) → pooled features.

  `width_per_group` and `groups` follow torchvision's naming: the 3x3 conv of a stage with
  nominal width `planes` has ``int(planes * width_per_group / 64) * groups`` channels, so
  ResNet-50 is (64, 1), WRN-50-2 is (128, 1) and ResNeXt-101 32x4d is (4, 32).
  """

  stage_sizes: Sequence[int]
  num_filters: int = 64
  width_per_group: int = 64
  groups: int = 1
  se_reduction: int | None = None
  zero_init_last_norm: bool = True
  dtype: Any = jnp.float32  # compute dtype; parameters are always float32
  axis_name: str | None = None  # BN statistics across this axis under shard_map/pmap
  # None: every stage, then global average pooling. k: stop after stage k and return its
  # feature map (N, h, w, C) unpooled — DELF's local features come from "conv4", k = 3. The
  # parameters are the full network's (later stages are simply not run), so one set of
  # weights serves both uses.
  output_stage: int | None = None

  @property
  def output_stride(self) -> int:
    """Input pixels per feature-map step at `output_stage` (stem conv and max-pool: 4)."""
    stage = len(self.stage_sizes) if self.output_stage is None else self.output_stage
    return 4 * 2 ** (stage - 1)

  def feature_channels(self, stage: int) -> int:
    return self.num_filters * 2 ** (stage - 1) * 4

  @property
  def num_features(self) -> int:
    return self.feature_channels(len(self.stage_sizes))

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype, padding="VALID")
    norm = functools.partial(
      nn.BatchNorm,
      use_running_average=not train,
      momentum=BN_MOMENTUM,
      epsilon=BN_EPSILON,
      dtype=self.dtype,
      axis_name=self.axis_name,
    )

    x = conv(self.num_filters, (7, 7), strides=(2, 2), padding=((3, 3), (3, 3)), name="conv1")(
      x.astype(self.dtype)
    )
    x = nn.relu(norm(name="bn1")(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for stage, num_blocks in enumerate(self.stage_sizes):
      if self.output_stage is not None and stage == self.output_stage:
        return x
      planes = self.num_filters * 2**stage
      inner_width = int(planes * self.width_per_group / 64) * self.groups
      for block in range(num_blocks):
        x = BottleneckBlock(
          planes=planes,
          inner_width=inner_width,
          conv=conv,
          norm=norm,
          strides=2 if stage > 0 and block == 0 else 1,
          groups=self.groups,
          se_reduction=self.se_reduction,
          project_shortcut=block == 0,
          zero_init_last_norm=self.zero_init_last_norm,
          name=f"layer{stage + 1}_{block}",
        )(x)
    if self.output_stage is not None:
      return x
    # Pool in float32: the embedding head after it is small and precision-sensitive.
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3))
ResNet101 = functools.partial(ResNet, stage_sizes=(3, 4, 23, 3))
ResNet152 = functools.partial(ResNet, stage_sizes=(3, 8, 36, 3))
ResNet200 = functools.partial(ResNet, stage_sizes=(3, 24, 36, 3))
WideResNet50_2 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), width_per_group=128)
SEResNeXt101_32x4d = functools.partial(
  ResNet, stage_sizes=(3, 4, 23, 3), width_per_group=4, groups=32, se_reduction=16
)

# Tiny variants for tests and the CPU demo: same code paths (projection shortcuts, strides,
# groups, SE), a few thousand times fewer FLOPs.
TinyResNet = functools.partial(ResNet, stage_sizes=(1, 1, 1, 1), num_filters=8)
TinyWideResNet = functools.partial(
  ResNet, stage_sizes=(1, 1, 1, 1), num_filters=8, width_per_group=128
)
TinySEResNeXt = functools.partial(
  ResNet, stage_sizes=(1, 1, 1, 1), num_filters=16, width_per_group=4, groups=4, se_reduction=4
)

BACKBONES: dict[str, Callable[..., ResNet]] = {
  "resnet50": ResNet50,
  "resnet101": ResNet101,
  "resnet152": ResNet152,
  "resnet200": ResNet200,
  "wide_resnet50_2": WideResNet50_2,
  "seresnext101_32x4d": SEResNeXt101_32x4d,
  "resnet_tiny": TinyResNet,
  "wide_resnet_tiny": TinyWideResNet,
  "seresnext_tiny": TinySEResNeXt,
}


def get_backbone(name: str, **kwargs) -> ResNet:
  """Builds a registered backbone, e.g. ``get_backbone("wide_resnet50_2", dtype=jnp.bfloat16)``."""
  try:
    factory = BACKBONES[name]
  except KeyError:
    raise ValueError(
      f"unknown backbone {name!r}; registered backbones: {', '.join(sorted(BACKBONES))}"
    ) from None
  return factory(**kwargs)
