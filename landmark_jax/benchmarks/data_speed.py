"""Input pipeline throughput: decoded + augmented images/s, with and without JPEG draft mode,
in-process and with 1 or 2 grain worker processes. The baseline is draft mode off.

`benchmark_packed`: the same training pipeline reading (resized) ArrayRecord shards against
reading the original JPEG files, at the same worker counts; the baseline is the files."""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from typing import Any, Sequence

from landmark_jax.data import ImageConfig, ImageSource, PipelineConfig, train_dataset


def pipeline_images_per_second(
  source: ImageSource, config: PipelineConfig, num_images: int
) -> float:
  """Batches of `train_dataset` per second × the batch size, after the first batch."""
  batches = num_images // config.batch_size
  epochs = -(-(batches + 1) * config.batch_size // len(source))
  iterator = iter(train_dataset(source, config, num_epochs=epochs)[0])
  next(iterator)  # worker start-up and first decode are not throughput
  start = time.perf_counter()
  for _ in itertools.islice(iterator, batches):
    pass
  return batches * config.batch_size / (time.perf_counter() - start)


def benchmark_data(
  source: ImageSource,
  *,
  crop_size: int = 224,
  resize_size: int = 256,
  num_images: int = 240,
  batch_size: int = 8,
  workers: tuple[int, ...] = (0, 1, 2),
) -> list[dict[str, Any]]:
  rows = []
  for num_workers, draft in itertools.product(workers, (False, True)):
    config = PipelineConfig(
      batch_size=batch_size,
      num_workers=num_workers,
      image=ImageConfig(resize_size=resize_size, crop_size=crop_size, jpeg_draft=draft),
    )
    rate = pipeline_images_per_second(source, config, num_images)
    rows.append(
      {
        "workers": num_workers or "0 (in-process)",
        "jpeg draft": draft,
        "images/s": rate,
        "images/s per process": rate / max(num_workers, 1),
      }
    )
  baseline = {row["workers"]: row["images/s"] for row in rows if not row["jpeg draft"]}
  for row in rows:
    row["vs no draft"] = row["images/s"] / baseline[row["workers"]]
  return rows


def benchmark_packed(
  files: ImageSource,
  packed: dict[str, ImageSource],
  *,
  crop_size: int = 224,
  resize_size: int = 256,
  num_images: int = 240,
  batch_size: int = 8,
  workers: tuple[int, ...] = (0, 1, 2),
) -> list[dict[str, Any]]:
  """images/s of `train_dataset` over `files` (the JPEG files) and each of `packed` (label →
  the same photos from shards), one after the other at each worker count, with the
  pipeline's default settings (JPEG draft on); "vs JPEG files" is the ratio to the files at
  the same worker count."""
  rows = []
  for num_workers in workers:
    config = PipelineConfig(
      batch_size=batch_size,
      num_workers=num_workers,
      image=ImageConfig(resize_size=resize_size, crop_size=crop_size),
    )
    rates = {
      label: pipeline_images_per_second(source, config, num_images)
      for label, source in {"JPEG files": files, **packed}.items()
    }
    for label, rate in rates.items():
      rows.append(
        {
          "source": label,
          "workers": num_workers or "0 (in-process)",
          "images/s": rate,
          "vs JPEG files": rate / rates["JPEG files"],
        }
      )
  return rows


@dataclasses.dataclass
class DataBenchmark:
  """`benchmark data`'s measurements and what they were made on."""

  root: str  # the dataset folder
  images: int  # photos in the source
  draft: list[dict]  # `benchmark_data`'s rows
  packed: list[dict]  # `benchmark_packed`'s rows (none without packed folders)


def run_data_benchmark(
  root: str | os.PathLike | None,
  *,
  csv: str = "train.csv",
  non_landmark_csv: str | None = None,
  packed_dirs: Sequence[str] = (),
  crop_size: int = 224,
  num_images: int = 240,
  batch_size: int = 8,
) -> DataBenchmark:
  """`benchmark data`: the JPEG files of a GLDv2-layout folder (default: the embedded demo
  dataset) with and without draft decoding, and, for each of `packed_dirs` (folders of
  ArrayRecord shards, under `root` or from the working directory), the same photos read from
  the shards."""
  from landmark_jax.data import GLDv2Source
  from landmark_jax.data.demo_dataset import demo_dataset
  from landmark_jax.data.packed import PackedImages
  from landmark_jax.data.tables import find_data_file

  root = root or demo_dataset()
  source = GLDv2Source(root, csv=csv, non_landmark_csv=non_landmark_csv)
  draft = benchmark_data(source, crop_size=crop_size, num_images=num_images, batch_size=batch_size)
  packed = {}
  for name in packed_dirs:
    folder = find_data_file(root, name, "--packed-dir", folder=True)
    resize = PackedImages(folder).resize
    label = f"ArrayRecord, longest side {resize}" if resize else "ArrayRecord, as is"
    packed[label if label not in packed else f"{label} ({name})"] = GLDv2Source(
      root, csv=csv, non_landmark_csv=non_landmark_csv, packed_dir=folder
    )
  packed_rows = []
  if packed:
    packed_rows = benchmark_packed(
      source, packed, crop_size=crop_size, num_images=num_images, batch_size=batch_size
    )
  return DataBenchmark(str(root), len(source), draft, packed_rows)
