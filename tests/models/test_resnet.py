import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmark_jax.models import BACKBONES, get_backbone
from tests.helpers import count_params

# torchvision's `sum(p.numel() for p in model.parameters())` minus the fc layer
# (2048 × 1000 + 1000 = 2,049,000); for resnet200 / seresnext101_32x4d the same for timm's
# models (64,673,832 and 48,955,416 in total). The torch-backed test below re-derives them.
REFERENCE_PARAM_COUNTS = {
  "resnet50": 23_508_032,
  "resnet101": 42_500_160,
  "resnet152": 58_143_808,
  "wide_resnet50_2": 66_834_240,
  "resnet200": 62_624_832,
  "seresnext101_32x4d": 46_906_416,
}


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAM_COUNTS))
def test_param_count_equals_reference(name):
  assert count_params(name) == REFERENCE_PARAM_COUNTS[name]


def test_resnet50_count_by_hand():
  # Derivation of the ResNet-50 number, so the table above is not taken on faith.
  # Stem: 7·7·3·64 conv + BN(64) scale/bias.
  total = 7 * 7 * 3 * 64 + 2 * 64
  inplanes = 64
  for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
    for block in range(blocks):
      cin = inplanes if block == 0 else planes * 4
      total += cin * planes + 2 * planes  # 1x1 + BN
      total += 9 * planes * planes + 2 * planes  # 3x3 + BN
      total += planes * planes * 4 + 2 * planes * 4  # 1x1 + BN
      if block == 0:
        total += cin * planes * 4 + 2 * planes * 4  # projection shortcut + BN
    inplanes = planes * 4
  assert total == count_params("resnet50") == 23_508_032


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet_tiny", "wide_resnet_tiny", "seresnext_tiny"])
def test_tiny_backbones_forward(name):
  backbone = get_backbone(name)
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  variables = backbone.init(jax.random.key(0), x)
  features = backbone.apply(variables, x)
  assert features.shape == (2, backbone.num_features)
  assert np.isfinite(np.asarray(features)).all()


def test_wide_variant_doubles_inner_width_only():
  params = jax.eval_shape(
    lambda: get_backbone("wide_resnet50_2").init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  )
  block = params["params"]["layer1_0"]
  assert block["conv2"]["kernel"].shape == (3, 3, 128, 128)  # 2 × 64 inside
  assert block["conv3"]["kernel"].shape == (1, 1, 128, 256)  # block output stays 256


def test_unknown_backbone_names_the_choices():
  with pytest.raises(ValueError, match="resnet5O.*wide_resnet50_2"):
    get_backbone("resnet5O")


def test_registry_covers_the_paper_backbones():
  assert {"resnet50", "resnet200", "seresnext101_32x4d", "wide_resnet50_2"} <= set(BACKBONES)
