"""Test-wide setup: eight simulated CPU devices, so every data-parallel path is exercised.

XLA reads the flag once, when JAX initialises its backends, so it is set here, before any
test module imports JAX.
"""

import os
import pathlib

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import tempfile  # noqa: E402

# Tests are dominated by compilation of small programs: skip XLA's slower optimisation
# passes, and share compiled programs between tests that build the same computation. Set
# as environment variables so that subprocesses started by tests (a training run that a
# test kills) compile exactly the same programs and so compute bit-identical results.
os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "true"
os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="landmark-jax-xla-cache-")
# Every program, however fast it compiles (as `runtime.enable_compilation_cache` keeps them):
# a process or a `train` call starts with dozens of programs under 0.5 s, which a 0.5 s
# minimum compiled again in each (measured: 5 s of CPU of a 2-core start's 27).
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"

import pytest  # noqa: E402

# A test that needs a trained model is slow, whatever else it does: the session's first
# such test trains it (tens of seconds on 2 cores). `make test-fast` (`-m "not slow"`) leaves
# these out; tests slow for other reasons (several processes, full-size networks, long
# loops) carry `@pytest.mark.slow` themselves. CI runs everything.
TRAINED_MODEL_FIXTURES = frozenset({"tiny_trained", "curriculum_run", "trained", "index_dir"})


def pytest_collection_modifyitems(items):
  for item in items:
    if TRAINED_MODEL_FIXTURES & set(item.fixturenames):
      item.add_marker(pytest.mark.slow)


# ../shared beside the checkout: present on every developer machine and in CI, absent in a
# user's clone. Tests that need it skip with this reason when it is missing.
SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
LANDMARKS_MINI = SHARED_DATA / "landmarks-mini"


@pytest.fixture(scope="session")
def landmarks_mini() -> pathlib.Path:
  if not LANDMARKS_MINI.is_dir():
    pytest.skip(f"{LANDMARKS_MINI} is absent: ../shared/ exists beside CI checkouts only")
  return LANDMARKS_MINI


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory):
  """A private cache for the embedded demo dataset (tests never write to the user's home)."""
  path = tmp_path_factory.mktemp("demo-cache")
  previous = os.environ.get("LANDMARK_JAX_CACHE")
  os.environ["LANDMARK_JAX_CACHE"] = str(path)
  yield path
  if previous is None:
    os.environ.pop("LANDMARK_JAX_CACHE", None)
  else:
    os.environ["LANDMARK_JAX_CACHE"] = previous


@pytest.fixture(scope="session")
def tiny_trained(demo_cache, tmp_path_factory):
  """The tiny CPU config trained once on the demo dataset (with `TINY_TRAINED_OVERRIDES`):
  (workdir, TrainResult)."""
  from landmark_jax.config import load_config
  from landmark_jax.train.loop import train
  from tests.helpers import TINY_TRAINED_OVERRIDES

  workdir = tmp_path_factory.mktemp("tiny-trained")
  return workdir, train(load_config("tiny_cpu", TINY_TRAINED_OVERRIDES), workdir, progress=False)


@pytest.fixture(scope="session")
def curriculum_run(demo_cache, tmp_path_factory):
  """The tiny config with the curriculum on, across its stage boundary (tests.helpers'
  `CURRICULUM_RUN`), uninterrupted on one process: (workdir, TrainResult)."""
  from landmark_jax.config import load_config
  from landmark_jax.train.loop import train
  from tests.helpers import CURRICULUM_RUN

  workdir = tmp_path_factory.mktemp("curriculum-run")
  return workdir, train(load_config("tiny_cpu", list(CURRICULUM_RUN)), workdir, progress=False)


@pytest.fixture(scope="session")
def trained(tiny_trained):
  """The tiny model restored for inference (`TrainedModel`)."""
  from landmark_jax.train.checkpoints import load_trained

  return load_trained(tiny_trained[0])


@pytest.fixture(scope="session")
def index_dir(trained, tmp_path_factory):
  """embed → clean → centroid index of the demo training set, under <dir>/index, with the
  cleaning and index settings of the run's own config (tiny_cpu), as the CLI uses them."""
  from landmark_jax.data import source_for
  from landmark_jax.data.demo_dataset import demo_dataset
  from landmark_jax.stages.build_index import build_centroid_index
  from landmark_jax.stages.clean import clean_embeddings, write_cleaning
  from landmark_jax.stages.embed import embed_to_folder

  out = tmp_path_factory.mktemp("pipeline")
  source = source_for(trained.config.data, "train", trained.label_map)
  embeddings = embed_to_folder(trained, source, out / "embeddings", progress=False)
  result = clean_embeddings(embeddings, trained.config.cleaning)
  write_cleaning(result, embeddings.label_map, out / "clean", embeddings.checkpoint)
  build_centroid_index(
    out / "clean", trained.config.index, landmarks_csv=demo_dataset() / "landmarks.csv"
  ).save(out / "index")
  return out


@pytest.fixture(scope="session")
def verifying_index_dir(trained, index_dir, tmp_path_factory):
  """`index_dir`'s index with local features (2 reference photos per landmark, attention
  trained 3 steps: the wiring, not the quality, is under test), then calibrated as
  `landmark-jax calibrate` does (η, then the verification band, on the demo's validation
  split; budget 0.5): <dir>/index."""
  import dataclasses

  from landmark_jax.data import source_for
  from landmark_jax.eval.calibration import calibrate_index
  from landmark_jax.index import CentroidIndex
  from landmark_jax.stages.local_features import build_local_features

  out = tmp_path_factory.mktemp("verifying") / "index"
  index = CentroidIndex.load(index_dir / "index")
  source = source_for(trained.config.data, "train", trained.label_map)
  config = dataclasses.replace(trained.config.delf, attention_steps=3)
  store = build_local_features(trained, index, source, config, per_landmark=2, progress=False)
  index.with_local_features(store).save(out)
  calibrate_index(out, trained, target_specificity=0.9, verify_budget=0.5)
  return out
