"""The paper's comparison (§4): the centroid recognizer vs a DELF-style baseline, on the same
photos, machine and backbone, in one run.

Per query, one photo at a time (a user's request), decoded beforehand for both: the time
of the forward pass(es), of the search and (DELF only) of geometric verification; the
memory of what each must hold to answer; sensitivity/specificity of each, both thresholds
calibrated to the same target specificity on the same validation photos.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
from typing import Any, Mapping

import numpy as np
from tqdm import tqdm

from landmark_jax import runtime
from landmark_jax.baselines.delf import DelfConfig, build_delf, calibrate_min_inliers
from landmark_jax.baselines.delf.config import PRESETS
from landmark_jax.benchmarks.timing import directory_bytes, format_table, machine_description, timed
from landmark_jax.data import ImageSource
from landmark_jax.data.transforms import ImageDecodeError, record_data
from landmark_jax.errors import DataError, UsageError
from landmark_jax.eval.calibration import (
  calibrate_on,
  embed_validation,
  is_calibrated,
  target_specificity_for,
)
from landmark_jax.eval.metrics import sensitivity_specificity
from landmark_jax.index import CentroidIndex
from landmark_jax.recognize.decision import Decision, public_landmark_id
from landmark_jax.recognize.embedder import PhotoEmbedder
from landmark_jax.recognize.photos import decode_photo

PARTS = ("forward", "search", "verification")


def _saved_bytes(index: CentroidIndex) -> int:
  with tempfile.TemporaryDirectory() as tmp:
    return directory_bytes(index.save(pathlib.Path(tmp) / "index"))


def benchmark_compare(
  trained,
  index: CentroidIndex,
  database: ImageSource,
  validation: ImageSource,
  test: ImageSource,
  delf_config: DelfConfig,
  *,
  target_specificity: float | None = None,
  max_queries: int | None = None,
  progress: bool = True,
) -> dict[str, Any]:
  """Both recognizers on `test`; `database` holds the photos the DELF baseline indexes (the
  centroid index's own training photos). Returns rows, ratios and the settings used."""
  default = trained.config.calibration.target_specificity
  target = target_specificity_for(index, default, target_specificity)
  # One photo at a time, a user's request: the embedder's one bucket is a single photo.
  embedder = PhotoEmbedder(trained, batch_size=1)
  label_map = index.label_map or trained.label_map
  eta = None  # the index's own η, when it was calibrated for this target
  if target_specificity is not None or not is_calibrated(index):
    decision = Decision(index, label_map=label_map, eta=-math.inf)
    eta = calibrate_on(decision, embed_validation(embedder, validation), target)["eta"]
  decision = Decision(index, label_map=label_map, eta=eta)
  eta = decision.eta

  delf, build_seconds = timed(lambda: build_delf(trained, database, delf_config, progress=progress))
  delf_calibration = calibrate_min_inliers(delf, validation, target)
  delf = delf.with_min_inliers(delf_calibration["min_inliers"])

  queries = np.arange(len(test))
  if max_queries is not None and max_queries < len(test):
    # Evenly spread: test sets often list landmark and non-landmark photos in blocks.
    queries = np.unique(np.linspace(0, len(test) - 1, max_queries).round().astype(int))
  times = {"centroid": {p: [] for p in PARTS[:2]}, "delf": {p: [] for p in PARTS}}
  answers = {"centroid": [], "delf": []}
  truth, skipped = [], []
  true_ids = test.landmark_ids()
  warmed_up = False
  for i in tqdm(queries, desc="compare", disable=not progress, dynamic_ncols=True):
    data = record_data(test[i])
    try:  # decoding is the same work for both, and not what is compared
      crop = decode_photo(data, embedder.image_config, read_exif=False).pixels[None]
      pixels, photo_hw = delf.extractor.prepare(data)
    except ImageDecodeError:
      skipped.append(str(test.ids[i]))
      continue
    for _ in range(1 if warmed_up else 2):  # the first pass compiles
      embedding, forward = timed(lambda: embedder.embed_arrays(crop))
      (prediction,), search = timed(lambda: decision.predict(embedding))
      (features,), delf_forward = timed(
        lambda: delf.extractor.extract_prepared(pixels[None], np.array([photo_hw]))
      )
      (photos, _), delf_search = timed(lambda: delf.database.shortlist(features, delf.config))
      verifications, verification = timed(
        lambda: delf.database.verify(features, photos, delf.config)
      )
      delf_prediction = delf.best_match(verifications, photos)
    warmed_up = True
    for name, part, seconds in (
      ("centroid", "forward", forward),
      ("centroid", "search", search),
      ("delf", "forward", delf_forward),
      ("delf", "search", delf_search),
      ("delf", "verification", verification),
    ):
      times[name][part].append(seconds)
    answers["centroid"].append(prediction.landmark_id)
    # Compared as the centroid answer's ids are: their text (`public_landmark_id`).
    answers["delf"].append(public_landmark_id(delf_prediction.landmark_id))
    truth.append(public_landmark_id(true_ids[i]))

  memory = {"centroid": index.centroids.nbytes + index.labels.nbytes, "delf": delf.database.nbytes}
  on_disk = {
    "centroid": _saved_bytes(index),
    "delf": _saved_bytes(delf.database.index)
    + delf.database.keypoints.nbytes
    + delf.database.offsets.nbytes,
  }
  rows = []
  for name, label, threshold in (
    ("centroid", "centroids (ours)", f"η = {eta:.4f}"),
    (
      "delf",
      f"DELF-style ({delf_config.attention} attention)",
      f"inliers ≥ {math.ceil(delf_calibration['min_inliers'])}",
    ),
  ):
    quality = sensitivity_specificity(answers[name], truth)
    medians = {p: 1000 * statistics.median(v) for p, v in times[name].items()}
    rows.append(
      {
        "method": label,
        **{f"{p} ms": medians.get(p, 0.0) for p in PARTS},
        "total ms": sum(medians.values()),
        "index KB": memory[name] / 1024,
        "on disk KB": on_disk[name] / 1024,
        "vectors": len(index) if name == "centroid" else len(delf.database.descriptors),
        "sensitivity": quality["sensitivity"],
        "specificity": quality["specificity"],
        "threshold": threshold,
      }
    )
  ours, delf_row = rows
  return {
    "rows": rows,
    "ratios": {
      "time (DELF / centroids)": delf_row["total ms"] / ours["total ms"],
      "forward (DELF / centroids)": delf_row["forward ms"] / ours["forward ms"],
      "memory (DELF / centroids)": delf_row["index KB"] / ours["index KB"],
    },
    "queries": len(truth),
    "skipped": skipped,
    "target_specificity": target,
    "database_photos": len(delf.database),
    "delf_build_s": build_seconds,
    "delf_config": dataclasses.asdict(delf_config),
    "delf_calibration": delf_calibration,
  }


def write_comparison(
  result: dict[str, Any], out_dir: str | pathlib.Path, full_size: dict[str, Any] | None = None
) -> str:
  """compare.md (returned), compare.json and compare.png in `out_dir`; `full_size`: a
  `benchmark_full_size_forward` row to append."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  table = format_table(
    result["rows"],
    [
      "method",
      "forward ms",
      "search ms",
      "verification ms",
      "total ms",
      "index KB",
      "on disk KB",
      "vectors",
      "sensitivity",
      "specificity",
      "threshold",
    ],
  )
  ratios = "\n".join(f"- {name}: {value:.1f}×" for name, value in result["ratios"].items())
  report = (
    f"# centroids vs DELF-style, {result['queries']} queries one at a time, "
    f"{result['database_photos']} database photos, both calibrated to "
    f"{result['target_specificity']:.0%} specificity: {machine_description()}\n\n"
    f"{table}\n\n{ratios}\n"
  )
  if full_size is not None:
    report += (
      "\n# one photo's forward pass(es) at full size, random weights\n\n"
      + format_table([full_size], list(full_size))
      + "\n"
    )
  chart = plot_comparison(result, out / "compare.png")
  (out / "compare.md").write_text(report)
  (out / "compare.json").write_text(
    json.dumps({**result, "full_size_forward": full_size}, indent=2, default=str)
  )
  return report + f"\nchart: {chart}"


def plot_comparison(result: dict[str, Any], path: str | pathlib.Path) -> pathlib.Path:
  """Per-query time by part (stacked) and index memory, side by side, as a PNG."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  rows = result["rows"]
  names = [r["method"] for r in rows]
  figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(11, 3.2))
  left = np.zeros(len(rows))
  for part, colour in zip(PARTS, ("#4c72b0", "#dd8452", "#55a868")):
    values = np.array([r[f"{part} ms"] for r in rows])
    time_axis.barh(names, values, left=left, color=colour, label=part)
    left += values
  time_axis.set_xlabel("ms per query (median)")
  time_axis.set_title(
    f"inference time: DELF / centroids = {result['ratios']['time (DELF / centroids)']:.1f}×"
  )
  time_axis.legend(loc="lower right", fontsize=8)
  memory_axis.barh(names, [r["index KB"] for r in rows], color="#8172b3")
  memory_axis.set_xscale("log")
  memory_axis.set_xlabel("index memory, KB (log scale)")
  memory_axis.set_title(
    f"memory: DELF / centroids = {result['ratios']['memory (DELF / centroids)']:.0f}×"
  )
  memory_axis.set_yticks([])
  figure.tight_layout()
  path = pathlib.Path(path)
  figure.savefig(path, dpi=120)
  plt.close(figure)
  return path


def benchmark_full_size_forward(
  backbone: str = "wide_resnet50_2",
  crop_size: int = 224,
  delf_config: DelfConfig = DelfConfig(attention="feature_norm"),
  repeats: int = 3,
) -> dict[str, Any]:
  """One photo's forward pass(es) at the paper's sizes, random weights: the centroid
  recognizer's single crop vs DELF's image pyramid, same backbone, same process. The demo's
  tiny network and 128-px photos understate this part of the gap."""
  import jax

  from landmark_jax import sharding
  from landmark_jax.baselines.delf import LocalFeatureExtractor
  from landmark_jax.baselines.delf.features import backbone_variables
  from landmark_jax.benchmarks.timing import median_seconds
  from landmark_jax.embedding import Embedder
  from landmark_jax.models import LandmarkNet

  rng = np.random.default_rng(0)
  model = LandmarkNet(backbone, num_classes=1000)
  crop = rng.integers(0, 256, (1, crop_size, crop_size, 3), dtype=np.uint8)
  variables = jax.jit(model.init)(jax.random.key(0), crop)
  embedder = Embedder(model, variables, sharding.make_data_mesh(jax.local_devices()[:1]))
  centroid = median_seconds(lambda: embedder(crop), repeats=repeats)
  extractor = LocalFeatureExtractor(
    model.backbone, backbone_variables(variables), delf_config, batch_size=1
  )
  size = delf_config.image_size
  pixels = rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8)
  photo_hw = np.array([[size * 3 // 4, size]])  # a 4:3 landscape photo
  delf = median_seconds(lambda: extractor.extract_prepared(pixels, photo_hw), repeats=repeats)
  return {
    "backbone": backbone,
    "centroid input": f"{crop_size}² crop",
    "DELF input": f"{size} px, scales {', '.join(f'{s:g}' for s in delf_config.scales)}",
    "centroid ms": 1000 * centroid,
    "DELF ms": 1000 * delf,
    "ratio": delf / centroid,
  }


@dataclasses.dataclass(frozen=True)
class CompareSettings:
  """What `compare` runs on (`landmark-jax benchmark compare`'s options)."""

  checkpoint: str | os.PathLike | None = None  # with index and root; none of them: the demo
  index: str | os.PathLike | None = None
  root: str | os.PathLike | None = None  # a GLDv2-layout folder with the CSVs below
  val_csv: str = "val.csv"  # the photos that calibrate both thresholds
  test_csv: str = "test.csv"  # the photos both recognizers answer
  non_landmark_csv: str | None = None  # non-landmark photo ids added to both splits
  attention: str = "trained"  # DELF's keypoint attention
  preset: str | None = None  # a `PRESETS` name; None: the checkpoint config's `delf` section
  overrides: tuple[str, ...] = ()  # DelfConfig fields, key=value
  target_specificity: float | None = None  # None: the index's calibration target
  max_queries: int | None = None
  full_size_backbone: str | None = None  # also time one photo's full-size forward passes
  demo_workdir: str | os.PathLike = "workdir/demo"  # the demo's, run first if it has no index
  out: str | os.PathLike = "workdir/compare"


def demo_environment(environ: Mapping[str, str]) -> dict[str, str]:
  """`environ` for a `landmark-jax demo` run from this process: without the CPU inference
  kernel flag the benchmark's command set (`runtime.set_cpu_kernel_flag`), which trains with
  other convolution kernels: the same seed gave 87.5 % at 92.5 % that way against 70.8 % at
  96.7 % from `landmark-jax demo`. A flag the user set themselves stays."""
  env = dict(environ)
  added = env.pop(runtime.KERNEL_FLAG_ADDED, None)
  if added:
    env["XLA_FLAGS"] = " ".join(
      part for part in env.get("XLA_FLAGS", "").split() if part != runtime.CPU_KERNEL_FLAG
    )
  return env


def run_demo_as_its_command(demo_dir: pathlib.Path) -> None:
  """`landmark-jax demo --workdir demo_dir` in a process of its own, trained exactly as
  that command trains (`demo_environment`)."""
  command = [sys.executable, "-m", "landmark_jax", "demo", "--workdir", str(demo_dir)]
  if subprocess.run(command, env=demo_environment(os.environ)).returncode != 0:
    raise DataError(f"the demo did not finish in {demo_dir}: run `landmark-jax demo` first")


def compare(settings: CompareSettings) -> str:
  """The comparison on a model + index + dataset, or on the demo's (run first where it has
  no index yet; every finished step is reused); writes compare.md/.json/.png to
  `settings.out` and returns the report (`write_comparison`)."""
  from landmark_jax.config import apply_overrides, load_config
  from landmark_jax.data import GLDv2Source, source_for
  from landmark_jax.train.checkpoints import load_trained

  checkpoint, index_dir, root = settings.checkpoint, settings.index, settings.root
  if checkpoint is None and index_dir is None:
    from landmark_jax.data.demo_dataset import demo_dataset
    from landmark_jax.stages import build_index

    demo_dir = pathlib.Path(settings.demo_workdir)
    if not build_index.is_done(demo_dir / "index"):
      run_demo_as_its_command(demo_dir)  # reuses every finished step
    checkpoint, index_dir, root = demo_dir / "train", demo_dir / "index", root or demo_dataset()
  elif checkpoint is None or index_dir is None or root is None:
    raise UsageError("give --checkpoint, --index and --root together (or none: the demo)")
  trained = load_trained(checkpoint)
  index = CentroidIndex.load(index_dir, expected_dim=trained.model.embedding_dim)

  def split(csv):
    return GLDv2Source(
      root, csv=csv, non_landmark_csv=settings.non_landmark_csv, label_map=trained.label_map
    )

  # The DELF settings: a preset's (a shipped config's `delf` section), else the model's own
  # config's (the demo model's is tiny_cpu: sized for the embedded 128-px photos).
  base = load_config(PRESETS[settings.preset]).delf if settings.preset else trained.config.delf
  delf_config = apply_overrides(
    dataclasses.replace(base, attention=settings.attention), settings.overrides
  )
  result = benchmark_compare(
    trained,
    index,
    source_for(trained.config.data, "train", trained.label_map),
    split(settings.val_csv),
    split(settings.test_csv),
    delf_config,
    target_specificity=settings.target_specificity,
    max_queries=settings.max_queries,
  )
  full_size = None
  if settings.full_size_backbone:
    full_size = benchmark_full_size_forward(settings.full_size_backbone)
  return write_comparison(result, settings.out, full_size)
