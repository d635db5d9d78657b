"""A demo index that verifies every answer, for the tests of verified answers (the service,
the CLI, `evaluate`): the session's index with local features of two reference photos per
landmark and a band covering every score, built once per test process."""

import dataclasses
import pathlib

from landmark_jax.data import GLDv2Source, source_for
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.data.transforms import record_data
from landmark_jax.index import CentroidIndex

ETA = 0.5  # any η: the band's offsets of 2 reach every cosine score from it
MIN_INLIERS = 8  # k: a reference photo matched with itself has far more
BAND = {"below": 2.0, "above": 2.0, "min_inliers": MIN_INLIERS, "candidates": 2, "budget": 1.0}

_built: dict = {}


@dataclasses.dataclass(frozen=True)
class VerifiedIndex:
  plain: pathlib.Path  # the session's index with η = ETA, no local features
  verified: pathlib.Path  # the same with a store and BAND
  reference_photo: bytes  # a stored reference photo's file (verification accepts it)
  reference_landmark: str  # its landmark, as answers give it


def verified_index(trained, index_dir, tmp_path_factory) -> VerifiedIndex:
  """Built on the first call of the test process, the same folders after it: the attention
  head trained for 3 steps and the PCA fitted on 8 photos, which is enough to describe
  photos consistently (what these tests check), not to recognise them well."""
  if "index" not in _built:
    from landmark_jax.stages.local_features import build_local_features

    out = tmp_path_factory.mktemp("verified-index")
    index = CentroidIndex.load(index_dir / "index").with_metadata(eta=ETA)
    index.save(out / "plain")
    source = source_for(trained.config.data, "train", trained.label_map)
    config = dataclasses.replace(trained.config.delf, attention_steps=3, pca_fit_images=8)
    store = build_local_features(trained, index, source, config, per_landmark=2, progress=False)
    index.with_local_features(store).with_metadata(verification=BAND).save(out / "verified")
    photo_id = store.photo_ids[0]
    record = source[[str(i) for i in source.ids].index(photo_id)]
    data = record_data(record)
    label_map = index.label_map or trained.label_map
    _built["index"] = VerifiedIndex(
      out / "plain",
      out / "verified",
      data if isinstance(data, bytes) else pathlib.Path(data).read_bytes(),
      str(label_map.to_landmark_id(int(store.photo_labels[0]))),
    )
  return _built["index"]


def non_landmark_photo() -> bytes:
  """A demo test photo of no landmark."""
  source = GLDv2Source(demo_dataset(), csv="test.csv")
  row = next(
    i for i, label in enumerate(source.labels) if label == source.label_map.non_landmark_label
  )
  return pathlib.Path(source.paths[row]).read_bytes()
