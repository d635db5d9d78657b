"""torchvision/timm weight import: forward equivalence, file formats and mismatch errors."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from landmark_jax.models import get_backbone
from landmark_jax.models.pretrained import (
  CheckpointMismatchError,
  backbone_variables_from_state_dict,
  load_pretrained_backbone,
  load_state_dict,
)
from tests.helpers import count_params

torch = pytest.importorskip("torch", reason="PyTorch is installed by `make test` (extra [torch])")
torchvision = pytest.importorskip("torchvision")


def randomize_batchnorm(model, seed=0):
  """Random BN affine params and running statistics, so that their import is tested too."""
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for module in model.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        module.weight.uniform_(0.5, 1.5, generator=generator)
        module.bias.normal_(0.0, 0.1, generator=generator)
        module.running_mean.normal_(0.0, 0.1, generator=generator)
        module.running_var.uniform_(0.5, 1.5, generator=generator)
  return model.eval()


def relative_error(actual, reference):
  return float(np.max(np.abs(actual - reference)) / np.max(np.abs(reference)))


def torch_features(model, images_nchw):
  model.fc = torch.nn.Identity()  # pooled 2048-d features, as our backbone returns
  with torch.no_grad():
    return model(torch.from_numpy(images_nchw)).numpy()


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.parametrize("name", ["resnet50", "wide_resnet50_2"])
def test_forward_equals_torchvision(name, tmp_path):
  torch.manual_seed(0)
  reference_model = randomize_batchnorm(getattr(torchvision.models, name)(weights=None))
  checkpoint = tmp_path / f"{name}.pth"
  torch.save(reference_model.state_dict(), checkpoint)  # what a user downloads from torchvision

  images = np.random.default_rng(0).standard_normal((2, 3, 224, 224), dtype=np.float32)
  reference = torch_features(reference_model, images)

  backbone = get_backbone(name)
  variables = load_pretrained_backbone(checkpoint, backbone)
  features = np.asarray(jax.jit(backbone.apply)(variables, images.transpose(0, 2, 3, 1)))
  assert features.shape == reference.shape == (2, 2048)
  assert relative_error(features, reference) < 1e-4


@pytest.mark.slow
@pytest.mark.torch
def test_forward_equals_timm_seresnext(tmp_path):
  timm = pytest.importorskip("timm")
  torch.manual_seed(0)
  reference_model = randomize_batchnorm(timm.create_model("seresnext101_32x4d", pretrained=False))
  images = np.random.default_rng(1).standard_normal((2, 3, 64, 64), dtype=np.float32)
  reference = torch_features(reference_model, images)

  state = {k: v.numpy() for k, v in reference_model.state_dict().items()}
  backbone = get_backbone("seresnext101_32x4d")
  variables = backbone_variables_from_state_dict(state, backbone)
  features = np.asarray(jax.jit(backbone.apply)(variables, images.transpose(0, 2, 3, 1)))
  assert relative_error(features, reference) < 1e-4


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.parametrize("name", ["resnet200", "seresnext101_32x4d"])
def test_param_count_equals_timm(name):
  timm = pytest.importorskip("timm")
  model = timm.create_model(name, pretrained=False)
  expected = sum(p.numel() for key, p in model.named_parameters() if not key.startswith("fc."))
  assert count_params(name) == expected


@pytest.mark.slow
@pytest.mark.torch
def test_safetensors_loads_without_torch(tmp_path):
  from safetensors.numpy import save_file

  torch.manual_seed(0)
  model = randomize_batchnorm(torchvision.models.resnet50(weights=None))
  state = {k: v.numpy() for k, v in model.state_dict().items()}
  save_file(state, str(tmp_path / "resnet50.safetensors"))
  images = np.random.default_rng(2).standard_normal((1, 3, 64, 64), dtype=np.float32)
  np.save(tmp_path / "images.npy", images)
  np.save(tmp_path / "reference.npy", torch_features(model, images))

  # A fresh interpreter in which `import torch` fails.
  script = textwrap.dedent(f"""
      import sys
      sys.modules["torch"] = None
      import numpy as np
      from landmark_jax.models import get_backbone
      from landmark_jax.models.pretrained import load_pretrained_backbone
      backbone = get_backbone("resnet50")
      variables = load_pretrained_backbone({str(tmp_path / "resnet50.safetensors")!r}, backbone)
      images = np.load({str(tmp_path / "images.npy")!r})
      features = np.asarray(backbone.apply(variables, images.transpose(0, 2, 3, 1)))
      reference = np.load({str(tmp_path / "reference.npy")!r})
      print(float(np.max(np.abs(features - reference)) / np.max(np.abs(reference))))
      """)
  result = subprocess.run(
    [sys.executable, "-c", script],
    capture_output=True,
    text=True,
    env={"XLA_FLAGS": "", "PATH": ""},
    check=False,
  )
  assert result.returncode == 0, result.stderr
  assert float(result.stdout.strip().splitlines()[-1]) < 1e-4


@pytest.mark.torch
def test_wrong_architecture_names_the_key():
  state = {k: v.numpy() for k, v in torchvision.models.resnet50(weights=None).state_dict().items()}
  with pytest.raises(
    CheckpointMismatchError,
    match=r"another architecture\? layer1\.0\.bn1\.bias \(checkpoint \(64,\)",
  ):
    backbone_variables_from_state_dict(state, get_backbone("wide_resnet50_2"))
  # ResNet-101 has 17 more layer3 blocks, each 3 convs + 3 BNs × 4 tensors = 15 keys.
  with pytest.raises(
    CheckpointMismatchError, match=r"\(255 missing, 0 unexpected\); missing keys: layer3\.10\."
  ):
    backbone_variables_from_state_dict(state, get_backbone("resnet101"))


def tiny_state_dict():
  """A torch-layout state dict for resnet_tiny, built from the Flax shapes by hand."""
  backbone = get_backbone("resnet_tiny")
  shapes = jax.eval_shape(lambda: backbone.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  leaf_names = {
    "kernel": "weight",
    "scale": "weight",
    "bias": "bias",
    "mean": "running_mean",
    "var": "running_var",
  }
  state = {}
  for path, leaf in traverse_util.flatten_dict(dict(shapes)).items():
    modules = [
      m.replace("layer1_0", "layer1.0")
      .replace("layer2_0", "layer2.0")
      .replace("layer3_0", "layer3.0")
      .replace("layer4_0", "layer4.0")
      .replace("downsample_0", "downsample.0")
      .replace("downsample_1", "downsample.1")
      for m in path[1:-1]
    ]
    shape = leaf.shape if len(leaf.shape) != 4 else (leaf.shape[3], leaf.shape[2], *leaf.shape[:2])
    state[".".join([*modules, leaf_names[path[-1]]])] = np.ones(shape, np.float32)
  state["fc.weight"] = np.ones((10, 256), np.float32)  # ignored: the classifier is replaced
  state["bn1.num_batches_tracked"] = np.array(3)  # ignored: no Flax counterpart
  return backbone, state


def test_tiny_state_dict_round_trip_and_errors(tmp_path):
  backbone, state = tiny_state_dict()
  variables = backbone_variables_from_state_dict(state, backbone)
  assert variables["params"]["layer2_0"]["conv2"]["kernel"].shape == (3, 3, 16, 16)

  missing = dict(state)
  del missing["layer3.0.bn2.running_var"]
  with pytest.raises(CheckpointMismatchError, match=r"missing keys: layer3\.0\.bn2\.running_var"):
    backbone_variables_from_state_dict(missing, backbone)

  extra = dict(state, **{"layer9.0.conv1.weight": np.ones((1,), np.float32)})
  with pytest.raises(CheckpointMismatchError, match=r"unexpected keys: layer9\.0\.conv1\.weight"):
    backbone_variables_from_state_dict(extra, backbone)


def test_missing_checkpoint_file_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
    load_state_dict(tmp_path / "nowhere.safetensors")
