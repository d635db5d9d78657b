"""Named pretrained starts: ``model.pretrained=torchvision`` and ``timm:NAME`` load through
the libraries' own caches, and without the weights (offline) fail in one line naming the file
and its folder. Nothing here reaches the network: downloads are made to fail at once."""

import sys
import urllib.error

import numpy as np
import pytest
from flax import traverse_util

from landmark_jax.config import apply_overrides, load_config
from landmark_jax.errors import ConfigError, MissingFileError, UsageError
from landmark_jax.models import BACKBONES, get_backbone
from landmark_jax.models.pretrained import load_pretrained_backbone, resolve_pretrained
from landmark_jax.models.pretrained_sources import TORCHVISION_BACKBONES, MissingExtraError
from landmark_jax.train import recipe

# What torchvision 0.29's ResNet50_Weights.DEFAULT (IMAGENET1K_V2) downloads, by file name.
RESNET50_TORCHVISION_FILE = "resnet50-11ad3fa6.pth"
TIMM_RESNET50 = "resnet50.a1_in1k"  # timm's default tag of resnet50
A_REVISION = "0123456789abcdef0123456789abcdef01234567"

# (Flax path, PyTorch key, whether the tensor is a conv kernel (OIHW → HWIO)): a stem conv,
# BN statistics deep in the net, a projection shortcut and a BN scale.
SAMPLED_TENSORS = (
  (("params", "conv1", "kernel"), "conv1.weight", True),
  (("batch_stats", "layer4_2", "bn3", "var"), "layer4.2.bn3.running_var", False),
  (("batch_stats", "layer2_1", "bn1", "mean"), "layer2.1.bn1.running_mean", False),
  (("params", "layer3_0", "downsample_0", "kernel"), "layer3.0.downsample.0.weight", True),
  (("params", "layer1_0", "bn2", "scale"), "layer1.0.bn2.weight", False),
)


@pytest.fixture
def torch():
  return pytest.importorskip("torch", reason="PyTorch is installed by `make test` (extra [torch])")


@pytest.fixture
def torch_hub_offline(torch, tmp_path, monkeypatch):
  """An empty torch hub cache under tmp_path/torch, and no network: a download fails at once."""
  monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

  def no_network(url, *args, **kwargs):
    raise urllib.error.URLError("no network in this test")

  monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
  return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def hf_offline(torch, tmp_path, monkeypatch):
  """An empty Hugging Face cache under tmp_path/hf with HF_HUB_OFFLINE=1. huggingface_hub reads
  the variables when imported, so its constants are set too."""
  pytest.importorskip("timm")
  from huggingface_hub import constants

  cache = tmp_path / "hf" / "hub"
  monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
  monkeypatch.setenv("HF_HUB_CACHE", str(cache))
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
  monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
  return cache


def randomized_state(model, torch):
  """`model`'s state dict with every float tensor drawn at random, so that nothing matches
  an initialisation or the real ImageNet weights by chance."""
  generator = torch.Generator().manual_seed(0)
  state = model.state_dict()
  with torch.no_grad():
    for value in state.values():
      if value.is_floating_point():
        value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
  return state


def assert_backbone_holds(variables, state):
  flat = traverse_util.flatten_dict(variables)
  # Every tensor but the classifier and BN's step counters is imported.
  assert len(flat) == len([k for k in state if not k.startswith("fc.") and "num_batches" not in k])
  for path, key, is_conv in SAMPLED_TENSORS:
    expected = state[key].numpy()
    np.testing.assert_array_equal(
      np.asarray(flat[path]), expected.transpose(2, 3, 1, 0) if is_conv else expected
    )


def assert_one_line(error, *parts):
  message = str(error.value)
  assert "\n" not in message
  for part in parts:
    assert str(part) in message, (part, message)


@pytest.mark.torch
def test_torchvision_backbones_are_the_registrys_that_torchvision_has(torch):
  torchvision = pytest.importorskip("torchvision")
  available = set(torchvision.models.list_models())
  assert {name for name in BACKBONES if name in available} == set(TORCHVISION_BACKBONES)


@pytest.mark.slow
@pytest.mark.torch
def test_torchvision_loads_from_torch_hubs_cache(torch, torch_hub_offline):
  torchvision = pytest.importorskip("torchvision")
  state = randomized_state(torchvision.models.resnet50(weights=None), torch)
  torch_hub_offline.mkdir(parents=True)
  torch.save(state, torch_hub_offline / RESNET50_TORCHVISION_FILE)

  variables = load_pretrained_backbone(
    "torchvision", get_backbone("resnet50"), backbone_name="resnet50"
  )
  assert_backbone_holds(variables, state)


@pytest.mark.torch
def test_torchvision_offline_names_the_file_and_the_folder(torch_hub_offline):
  with pytest.raises(MissingFileError) as error:
    resolve_pretrained("torchvision", "wide_resnet50_2")
  assert_one_line(
    error,
    "model.pretrained=torchvision: wide_resnet50_2-9ba9bcbe.pth",
    f"not in torch hub's cache {torch_hub_offline} ",
    "no network in this test",
    "download https://download.pytorch.org/models/wide_resnet50_2-9ba9bcbe.pth",
    "model.pretrained=<the file's path>",
  )


@pytest.mark.slow
@pytest.mark.torch
def test_timm_loads_from_the_hugging_face_cache(torch, hf_offline):
  import timm
  from safetensors.torch import save_file

  state = randomized_state(timm.create_model("resnet50", pretrained=False), torch)
  # huggingface_hub's layout: refs/<branch> holds the revision whose snapshot has the file.
  repo = hf_offline / f"models--timm--{TIMM_RESNET50}"
  (repo / "snapshots" / A_REVISION).mkdir(parents=True)
  (repo / "refs").mkdir()
  (repo / "refs" / "main").write_text(A_REVISION)
  save_file(state, str(repo / "snapshots" / A_REVISION / "model.safetensors"))

  backbone = get_backbone("resnet50")
  assert_backbone_holds(load_pretrained_backbone(f"timm:{TIMM_RESNET50}", backbone), state)
  # Without a tag, timm's default one: the same weights.
  assert_backbone_holds(load_pretrained_backbone("timm:resnet50", backbone), state)


@pytest.mark.torch
def test_timm_offline_names_the_repo_the_file_and_the_folder(hf_offline):
  with pytest.raises(MissingFileError) as error:
    resolve_pretrained(f"timm:{TIMM_RESNET50}", "resnet50")
  assert_one_line(
    error,
    f"model.pretrained=timm:{TIMM_RESNET50}: model.safetensors of the Hugging Face repo "
    f"timm/{TIMM_RESNET50}",
    f"not in the Hugging Face cache {hf_offline} and could not be downloaded (HF_HUB_OFFLINE "
    "is set)",
    f"`hf download timm/{TIMM_RESNET50} model.safetensors`",
    f"https://huggingface.co/timm/{TIMM_RESNET50}/resolve/main/model.safetensors",
  )


@pytest.mark.torch
@pytest.mark.parametrize(
  "name, match",
  [
    ("no_such_net", r"timm has no model 'no_such_net'"),
    ("resnet50.no_such_tag", r"Invalid pretrained tag \(no_such_tag\) for resnet50"),
    # timm knows resnet200 but has no weights for it: refused, not randomly initialised.
    ("resnet200", r"timm has no pretrained weights for resnet200"),
  ],
)
def test_timm_names_without_weights_are_config_errors(torch, name, match):
  pytest.importorskip("timm")
  with pytest.raises(ConfigError, match=match):
    resolve_pretrained(f"timm:{name}", "resnet200")


def test_torchvision_for_a_backbone_it_lacks_is_refused_before_training():
  config = apply_overrides(load_config("tiny_cpu"), ["model.pretrained=torchvision"])
  with pytest.raises(ConfigError) as error:
    recipe.check_pretrained(config)
  assert_one_line(
    error,
    "torchvision has no weights for backbone wide_resnet_tiny",
    "only for resnet50, resnet101, resnet152, wide_resnet50_2",
    "model.pretrained=timm:NAME",
  )
  with pytest.raises(ConfigError, match="no weights for backbone seresnext101_32x4d"):
    resolve_pretrained("torchvision", "seresnext101_32x4d")  # without importing torch


@pytest.mark.parametrize("spec", ["torchvision", "timm:resnet50.a1_in1k"])
def test_names_pass_the_recipe_check_without_a_file(spec):
  # Not files: whether the weights are cached is for the loader to find out.
  config = apply_overrides(load_config("tiny_cpu"), [f"model.pretrained={spec}"])
  config = apply_overrides(config, ["model.backbone=resnet50", "model.fine_tune=True"])
  recipe.check_pretrained(config)  # no error


def test_timm_without_a_model_name_is_refused():
  config = apply_overrides(load_config("tiny_cpu"), ["model.pretrained=timm:"])
  with pytest.raises(ConfigError, match=r"model\.pretrained=timm: needs a timm model name"):
    recipe.check_pretrained(config)


@pytest.mark.parametrize(
  "spec, missing, extra_text",
  [
    ("torchvision", "torchvision", "needs PyTorch and torchvision"),
    ("timm:resnet50", "timm", "needs PyTorch and timm"),
  ],
)
def test_a_missing_library_names_the_extra(monkeypatch, spec, missing, extra_text):
  monkeypatch.setitem(sys.modules, missing, None)  # `import` of it now raises ImportError
  with pytest.raises(MissingExtraError) as error:
    resolve_pretrained(spec, "resnet50")
  assert_one_line(error, extra_text, "pip install 'landmark-jax[torch]'")


def test_torchvision_without_the_backbones_name_says_to_pass_it():
  # A bare ResNet does not know its registry name; torchvision's weights are picked by it.
  with pytest.raises(UsageError, match="pass backbone_name"):
    load_pretrained_backbone("torchvision", get_backbone("resnet50"))


@pytest.mark.parametrize(
  "spec, missing, extra_text",
  [
    ("torchvision", "torchvision", "needs PyTorch and torchvision"),
    ("timm:resnet50.a1_in1k", "timm", "needs PyTorch and timm"),
    ("torchvision", "torch", "needs PyTorch and torchvision"),
  ],
)
def test_a_missing_library_is_said_before_training(monkeypatch, spec, missing, extra_text):
  # The recipe's dry run and `fit` check this first: not a failure at the first step's load
  # of the weights, after a cluster's queue.
  config = apply_overrides(load_config("tiny_cpu"), [f"model.pretrained={spec}"])
  config = apply_overrides(config, ["model.backbone=resnet50", "model.fine_tune=True"])
  monkeypatch.setitem(sys.modules, missing, None)  # looked up, it is not there
  with pytest.raises(MissingExtraError) as error:
    recipe.check_pretrained(config)
  assert_one_line(error, extra_text, "pip install 'landmark-jax[torch]'")
