"""Recognition compiles once per batch-size bucket, and padding a batch changes no answer.

The forward pass is jitted per input shape; `PhotoEmbedder` pads every call up to one of a
few bucket sizes, so that a service seeing batches of every size from 1 to `batch_size`
compiles a handful of programs at start-up and never again. XLA compilations are counted with
`jax.monitoring`: JAX records the event below around every backend compilation (persistent
cache hits included — the test suite runs with a compilation cache), tagged with the jitted
function's name.
"""

import jax
import jax.monitoring
import numpy as np
import pytest

from landmark_jax.data import source_for
from landmark_jax.embedding import power_of_two_buckets
from landmark_jax.index import CentroidIndex
from landmark_jax.recognize import Recognizer

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
BATCH_SIZES = (1, 3, 7, 16)


class Compilations:
  """The functions JAX compiled while listening, in order."""

  def __init__(self):
    self.names = []

  def __call__(self, event, duration_secs, **kwargs):
    if event == COMPILE_EVENT:
      self.names.append(kwargs.get("fun_name", "?"))

  def since(self, start: int) -> list[str]:
    return self.names[start:]


@pytest.fixture
def compilations():
  listener = Compilations()
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield listener
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture(scope="module")
def photos(trained):
  """Real photos of the demo test split, as paths."""
  test = source_for(trained.config.data, "test", trained.label_map)
  return [str(p) for p in test.paths[: max(BATCH_SIZES)]]


def test_one_compilation_per_bucket_and_padding_changes_no_answer(
  trained, index_dir, photos, compilations
):
  recognizer = Recognizer(trained, CentroidIndex.load(index_dir / "index"), batch_size=16)
  buckets = recognizer.photos.buckets
  # The default buckets: powers of two up to batch_size, each rounded up to a whole number
  # of images per local device (the batch is split over them).
  devices = jax.local_device_count()
  assert buckets == sorted({-(-b // devices) * devices for b in power_of_two_buckets(16)})
  expected = len({next(b for b in buckets if b >= min(n, buckets[-1])) for n in BATCH_SIZES})
  assert expected >= 2, f"buckets {buckets} put every batch size in one: nothing to check"
  # The index search is not what is counted here: run it once first (an exact index jits its
  # matmul + top-k once, for a fixed padded query batch; ScaNN compiles nothing).
  recognizer.decision.predict(np.zeros((1, recognizer.index.dim), np.float32))

  def recognize_all():
    return {n: recognizer.recognize(photos[:n], use_exif=False) for n in BATCH_SIZES}

  start = len(compilations.names)
  first = recognize_all()
  assert len(compilations.since(start)) == expected, (
    f"batches of {BATCH_SIZES} in buckets {buckets}: compiled {compilations.since(start)}"
  )

  start = len(compilations.names)
  again = recognize_all()
  one_by_one = [recognizer.recognize([photo], use_exif=False)[0] for photo in photos]
  assert compilations.since(start) == [], "a repeated batch size compiled again"

  for n in BATCH_SIZES:  # the same photos, the same answers, whatever the call
    assert [(p.landmark_id, p.score) for p in again[n]] == [
      (p.landmark_id, p.score) for p in first[n]
    ]
  # The 16 photos together (no padding: bucket 16) and one at a time (each padded to the
  # smallest bucket) get the same answers.
  together = first[16]
  assert [p.landmark_id for p in together] == [p.landmark_id for p in one_by_one]
  np.testing.assert_allclose([p.score for p in together], [p.score for p in one_by_one], atol=1e-5)
  for a, b in zip(together, one_by_one):
    assert [c.landmark_id for c in a.candidates] == [c.landmark_id for c in b.candidates]
    np.testing.assert_allclose(
      [c.score for c in a.candidates], [c.score for c in b.candidates], atol=1e-5
    )


def test_a_warm_up_compiles_every_bucket_and_calls_compile_nothing(
  trained, index_dir, photos, compilations
):
  """`warm_up` compiles ahead of time without running; the calls after it reuse those
  executables (the service's start-up relies on it)."""
  recognizer = Recognizer(trained, CentroidIndex.load(index_dir / "index"), batch_size=16)
  recognizer.decision.predict(np.zeros((1, recognizer.index.dim), np.float32))
  start = len(compilations.names)
  recognizer.photos.warm_up()
  assert len(compilations.since(start)) == len(recognizer.photos.buckets)
  start = len(compilations.names)
  for n in BATCH_SIZES:
    recognizer.recognize(photos[:n], use_exif=False)
  assert compilations.since(start) == [], "a call after the warm-up compiled"
