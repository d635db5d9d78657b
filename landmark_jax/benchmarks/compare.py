"""The paper's comparison (§4): the centroid recognizer, the same with verified answers
(issue 32) and a DELF-style baseline, on the same photos, machine and backbone, in one run.

Per query, one photo at a time (a user's request), decoded beforehand for all: the time
of the forward pass(es), of the search and of geometric verification (DELF: every query;
verified answers: only those whose score falls in the band around η); the memory of what
each must hold to answer; sensitivity/specificity of each, every threshold calibrated to
the same target specificity on the same validation photos. Verified answers match against
reference photos described by DELF's own extractor, taken from its database: like with
like, and nothing described twice.
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
from typing import Any, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from landmark_jax import runtime
from landmark_jax.baselines.delf import DelfConfig, build_delf, calibrate_min_inliers
from landmark_jax.baselines.delf.config import PRESETS
from landmark_jax.baselines.delf.retrieval import DelfRecognizer, landmark_photos
from landmark_jax.baselines.delf.stored import extractor_arrays
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
from landmark_jax.eval.verify_calibration import (
  DEFAULT_BUDGET,
  DEFAULT_CANDIDATES,
  calibrate_verification,
)
from landmark_jax.index import CentroidIndex
from landmark_jax.index.local_features import LocalFeatureStore
from landmark_jax.recognize.decision import Decision, public_landmark_id
from landmark_jax.recognize.embedder import PhotoEmbedder
from landmark_jax.recognize.photos import decode_photo
from landmark_jax.recognize.verifier import Verifier
from landmark_jax.stages.local_features import DEFAULT_PER_LANDMARK, reference_photos

PARTS = ("forward", "search", "verification")
METHODS = ("centroid", "verified", "delf")


def _saved_bytes(index: CentroidIndex) -> int:
  with tempfile.TemporaryDirectory() as tmp:
    return directory_bytes(index.save(pathlib.Path(tmp) / "index"))


def store_from_delf(
  delf: DelfRecognizer,
  index: CentroidIndex,
  label_map,
  embedder: PhotoEmbedder,
  database: ImageSource,
  per_landmark: int = DEFAULT_PER_LANDMARK,
) -> LocalFeatureStore:
  """The store `landmark-jax local-features` would keep for `index`, its photos chosen the
  same way (`reference_photos`), but their features read from DELF's database: described
  by the same extractor as DELF's, and not described again."""
  embedded = embedder.embed_source(landmark_photos(database), read_exif=False)
  label_of = {
    public_landmark_id(label_map.to_landmark_id(int(label))): int(label)
    for label in np.unique(index.labels)
  }
  photo_of = {str(image_id): p for p, image_id in enumerate(delf.database.image_ids)}
  # A photo DELF could not read has no features to store: it is not a candidate.
  index_labels = np.array(
    [
      label_of.get(public_landmark_id(landmark), -1) if str(image_id) in photo_of else -1
      for image_id, landmark in zip(embedded.ids, embedded.landmark_ids())
    ],
    np.int64,
  )
  if not (index_labels >= 0).any():
    raise DataError("none of DELF's database photos is of a landmark of the index")
  chosen = reference_photos(index, embedded, index_labels, per_landmark)
  photos = [photo_of[str(embedded.ids[row])] for row, _ in chosen]
  features = [delf.database.photo_features(p) for p in photos]
  return LocalFeatureStore.from_float(
    [f.keypoints for f in features],
    [f.descriptors for f in features],
    [label for _, label in chosen],
    [str(delf.database.image_ids[p]) for p in photos],
    *extractor_arrays(delf.extractor),
  )


def quality(answers: Sequence[str | None], truth: Sequence[str | None]) -> dict[str, float]:
  """Sensitivity and specificity, each with its n and 95 % Wilson interval, as row columns."""
  measured = sensitivity_specificity(answers, truth)
  columns = {}
  for rate, n in (("sensitivity", "landmark_images"), ("specificity", "non_landmark_images")):
    low, high = measured[f"{rate}_ci"]
    columns |= {
      rate: measured[rate],
      f"{rate} n": measured[n],
      f"{rate} low": low,
      f"{rate} high": high,
    }
  return columns


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
  verify_budget: float = DEFAULT_BUDGET,
  verify_candidates: int = DEFAULT_CANDIDATES,
  per_landmark: int = DEFAULT_PER_LANDMARK,
  store: LocalFeatureStore | None = None,
  seed: int = 0,
  progress: bool = True,
) -> dict[str, Any]:
  """The three recognizers on `test`; `database` holds the photos the DELF baseline indexes
  (the centroid index's own training photos). `store`: the verified answers' reference
  photos (None: `store_from_delf`). Returns rows, ratios and the settings used."""
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

  delf, build_seconds = timed(
    lambda: build_delf(trained, database, delf_config, progress=progress, seed=seed)
  )
  delf_calibration = calibrate_min_inliers(delf, validation, target)
  delf = delf.with_min_inliers(delf_calibration["min_inliers"])

  own_store = store is not None
  if store is None:
    store = store_from_delf(delf, index, label_map, embedder, database, per_landmark)
  # The centroid row's index without any store the given one keeps; the verified row's
  # with `store` and the band chosen here (what `calibrate --verify-budget` would save).
  plain = index.with_local_features(None)
  verified_index = plain.with_local_features(store)
  band = calibrate_verification(
    trained,
    Decision(verified_index, label_map=label_map, eta=eta),
    validation,
    target,
    verify_budget,
    candidates=verify_candidates,
    progress=progress,
  )
  verified_index = verified_index.with_metadata(
    verification={k: band[k] for k in ("below", "above", "min_inliers", "candidates")}
  )
  verifier = Verifier(trained, Decision(verified_index, label_map=label_map, eta=eta))
  eta = decision.eta

  queries = np.arange(len(test))
  if max_queries is not None and max_queries < len(test):
    # Evenly spread: test sets often list landmark and non-landmark photos in blocks.
    queries = np.unique(np.linspace(0, len(test) - 1, max_queries).round().astype(int))
  times = {name: {p: [] for p in PARTS} for name in METHODS}
  totals = {name: [] for name in METHODS}  # per query, seconds
  answers = {name: [] for name in METHODS}
  verified_queries = []
  truth, skipped = [], []
  true_ids = test.landmark_ids()
  warmed_up = False
  for i in tqdm(queries, desc="compare", disable=not progress, dynamic_ncols=True):
    data = record_data(test[i])
    try:  # decoding is the same work for all, and not what is compared
      crop = decode_photo(data, embedder.image_config, read_exif=False).pixels[None]
      pixels, photo_hw = delf.extractor.prepare(data)
      # The verifier's extractor is DELF's unless the index brought its own store.
      local = verifier.extractor.prepare(data) if own_store else (pixels, photo_hw)
    except ImageDecodeError:
      skipped.append(str(test.ids[i]))
      continue
    passes = 1 if warmed_up else 2
    for attempt in range(passes):  # the first pass compiles
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
      # Verified answers: the centroid answer above, then, only where the score is
      # uncertain, the photo described (`Verifier.describe`'s program) and matched. The
      # warm-up pass describes even a photo that needs none, to compile that program.
      needed = verifier.needs(prediction)
      describe = check_seconds = 0.0
      if needed or attempt < passes - 1:
        (query_features,), describe = timed(
          lambda: verifier.extractor.extract_prepared(
            local[0][None], np.array([local[1]], np.int32)
          )
        )
        check, check_seconds = timed(lambda: verifier.check(query_features, prediction))
    warmed_up = True
    verified = verifier.verified(prediction, check) if needed else prediction
    parts = {
      "centroid": (forward, search, 0.0),
      "verified": (forward + describe, search, check_seconds),
      "delf": (delf_forward, delf_search, verification),
    }
    for name, seconds in parts.items():
      for part, value in zip(PARTS, seconds):
        times[name][part].append(value)
      totals[name].append(sum(seconds))
    verified_queries.append(needed)
    answers["centroid"].append(prediction.landmark_id)
    answers["verified"].append(verified.landmark_id)
    # Compared as the centroid answer's ids are: their text (`public_landmark_id`).
    answers["delf"].append(public_landmark_id(delf_prediction.landmark_id))
    truth.append(public_landmark_id(true_ids[i]))

  centroid_bytes = index.centroids.nbytes + index.labels.nbytes
  delf_extractor, _ = extractor_arrays(delf.extractor)
  memory = {
    "centroid": centroid_bytes,
    "verified": centroid_bytes + store.nbytes,
    "delf": delf.database.nbytes,
  }
  # What describes a query besides the backbone (attention head, PCA): DELF needs it too.
  extractor_bytes = {
    "centroid": 0,
    "verified": store.extractor_nbytes,
    "delf": sum(a.nbytes for a in delf_extractor.values()),
  }
  on_disk = {
    "centroid": _saved_bytes(plain),
    "verified": _saved_bytes(verified_index),
    "delf": _saved_bytes(delf.database.index)
    + delf.database.keypoints.nbytes
    + delf.database.offsets.nbytes,
  }
  vectors = {
    "centroid": len(index),
    "verified": len(index) + store.num_features,
    "delf": len(delf.database.descriptors),
  }
  shares = {
    "centroid": [False] * len(truth),
    "verified": verified_queries,
    "delf": [True] * len(truth),
  }
  k = math.ceil(delf_calibration["min_inliers"])
  labels = {
    "centroid": ("centroids (ours)", f"η = {eta:.4f}"),
    "verified": (
      "centroids + verification (ours)",
      f"η = {eta:.4f}, band [η − {band['below']:.4f}, η + {band['above']:.4f}), "
      f"inliers ≥ {band['min_inliers']}, {band['candidates']} candidates",
    ),
    "delf": (f"DELF-style ({delf_config.attention} attention)", f"inliers ≥ {k}"),
  }
  rows = []
  for name in METHODS:
    medians = {p: 1000 * statistics.median(v) for p, v in times[name].items()}
    per_query_ms = [1000 * s for s in totals[name]]
    rows.append(
      {
        "method": labels[name][0],
        **{f"{p} ms": medians[p] for p in PARTS},
        "total ms": sum(medians.values()),
        "mean ms": float(np.mean(per_query_ms)),
        "p99 ms": float(np.percentile(per_query_ms, 99)),
        "share verified": sum(shares[name]) / len(truth),
        "index KB": memory[name] / 1024,
        "extractor KB": extractor_bytes[name] / 1024,
        "on disk KB": on_disk[name] / 1024,
        "vectors": vectors[name],
        **quality(answers[name], truth),
        "threshold": labels[name][1],
        "per_query_ms": per_query_ms,
        "per_query_verified": list(map(bool, shares[name])),
      }
    )
  return {
    "rows": rows,
    "ratios": ratios(*rows),
    "queries": len(truth),
    "skipped": skipped,
    "target_specificity": target,
    "database_photos": len(delf.database),
    "delf_build_s": build_seconds,
    "delf_config": dataclasses.asdict(delf_config),
    "delf_calibration": delf_calibration,
    "verification": {
      **band,
      "store": "the index's own store" if own_store else "DELF's database",
      "per_landmark": None if own_store else per_landmark,
      **{k: v for k, v in store.summary().items() if k != "settings"},
      "nbytes": store.nbytes,
      "extractor_nbytes": store.extractor_nbytes,
    },
    "seed": seed,
  }


def ratios(ours: dict, verified: dict, delf: dict) -> dict[str, float]:
  """DELF's cost over each of ours. Time on the mean per query, the same basis for both
  (verified queries are few and slow, which a median hides), and on the median parts' sum
  for the centroids, the basis of the earlier tables (docs/benchmarks.md)."""
  return {
    "time, mean per query (DELF / centroids)": delf["mean ms"] / ours["mean ms"],
    "time, mean per query (DELF / verified)": delf["mean ms"] / verified["mean ms"],
    "time, median parts (DELF / centroids)": delf["total ms"] / ours["total ms"],
    "forward (DELF / centroids)": delf["forward ms"] / ours["forward ms"],
    "memory (DELF / centroids)": delf["index KB"] / ours["index KB"],
    "memory (DELF / verified)": delf["index KB"] / verified["index KB"],
  }


def mean_over_seeds(results: Sequence[dict[str, Any]], seeds: Sequence[int]) -> dict[str, Any]:
  """One result whose every numeric column (rows, ratios, counts) is the mean of the seeds'
  results; a text column they share stays, one they differ in reads "per seed"."""

  def mean(values):
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
      return float(np.mean(values))
    return values[0] if all(v == values[0] for v in values) else "per seed"

  first = results[0]
  rows = []
  for position, row in enumerate(first["rows"]):
    seeds_rows = [r["rows"][position] for r in results]
    rows.append(
      {
        key: mean([r[key] for r in seeds_rows])
        for key in row
        if not isinstance(row[key], list)  # per-query columns: one run's
      }
    )
  return {
    "rows": rows,
    "ratios": {name: mean([r["ratios"][name] for r in results]) for name in first["ratios"]},
    **{
      key: mean([r[key] for r in results])
      for key in ("queries", "database_photos", "target_specificity")
    },
    "seeds": list(seeds),
  }


COLUMNS = (
  "method",
  "forward ms",
  "search ms",
  "verification ms",
  "total ms",
  "mean ms",
  "p99 ms",
  "share verified",
  "index KB",
  "extractor KB",
  "on disk KB",
  "vectors",
  "sensitivity",
  "specificity",
  "threshold",
)


def _shown(row: dict[str, Any]) -> dict[str, Any]:
  """`row` as the table shows it: each rate with its 95 % interval and n."""
  shown = dict(row)
  for rate in ("sensitivity", "specificity"):
    shown[rate] = (
      f"{row[rate]:.3f} [{row[f'{rate} low']:.3f}, {row[f'{rate} high']:.3f}] "
      f"n={row[f'{rate} n']:g}"
    )
  return shown


def write_comparison(
  result: dict[str, Any], out_dir: str | pathlib.Path, full_size: dict[str, Any] | None = None
) -> str:
  """compare.md (returned), compare.json and compare.png in `out_dir`; `full_size`: a
  `benchmark_full_size_forward` row to append. A `mean_over_seeds` result says so."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  table = format_table([_shown(row) for row in result["rows"]], COLUMNS)
  ratios = "\n".join(f"- {name}: {value:.1f}×" for name, value in result["ratios"].items())
  seeds = result.get("seeds")
  heading = (
    f"mean over seeds {', '.join(map(str, seeds))} (each: seed-S/compare.md; intervals: the "
    "means of the seeds' bounds), "
    if seeds
    else ""
  )
  report = (
    f"# centroids, verified answers and DELF-style, {heading}{result['queries']:g} queries "
    f"one at a time, {result['database_photos']:g} database photos, all calibrated to "
    f"{result['target_specificity']:.0%} specificity: {machine_description()}\n\n"
    f"{table}\n\nforward, search, verification ms: the median over queries of each part, "
    "total ms their sum; mean and p99 ms: of each query's whole time (verification runs on "
    "a few queries, which a median hides)\n\n"
    f"{ratios}\n"
  )
  verification = result.get("verification")
  if verification:
    report += (
      f"\nverified answers: the local features of {verification['photos']} reference photos "
      f"({verification['features']} features) from {verification['store']}; budget "
      f"{verification['budget']:.0%}, verified on validation "
      f"{verification['verified_share']:.1%}"
      + ("" if verification["target_met"] else " (no band reaches the target: off)")
      + "\n"
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
    "inference time (medians): DELF / centroids = "
    f"{result['ratios']['time, median parts (DELF / centroids)']:.1f}×"
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
  verify_budget: float = DEFAULT_BUDGET  # the most share of queries verified answers settle
  verify_candidates: int = DEFAULT_CANDIDATES  # the best candidates verification matches
  # The demo once per seed (in <demo_workdir>/seed-S, each's comparison in <out>/seed-S) and
  # the mean of their tables in <out>; () : the demo as it is, once
  seeds: tuple[int, ...] = ()
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


def run_demo_as_its_command(demo_dir: pathlib.Path, overrides: Sequence[str] = ()) -> None:
  """`landmark-jax demo --workdir demo_dir [overrides]` in a process of its own, trained
  exactly as that command trains (`demo_environment`)."""
  command = [sys.executable, "-m", "landmark_jax", "demo", "--workdir", str(demo_dir), *overrides]
  if subprocess.run(command, env=demo_environment(os.environ)).returncode != 0:
    raise DataError(f"the demo did not finish in {demo_dir}: run `landmark-jax demo` first")


def compare(settings: CompareSettings) -> str:
  """The comparison on a model + index + dataset, or on the demo's (run first where it has
  no index yet; every finished step is reused), once or per seed (`settings.seeds`); writes
  compare.md/.json/.png to `settings.out` and returns the report (`write_comparison`)."""
  if settings.seeds and (settings.checkpoint is not None or settings.index is not None):
    raise UsageError("--seeds trains the demo once per seed: give it without --checkpoint/--index")
  if settings.seeds:
    results = []
    for seed in settings.seeds:
      results.append(_compare_once(settings, seed))
      write_comparison(results[-1], pathlib.Path(settings.out) / f"seed-{seed}")
    result = mean_over_seeds(results, settings.seeds)
  else:
    result = _compare_once(settings)
  full_size = None
  if settings.full_size_backbone:
    full_size = benchmark_full_size_forward(settings.full_size_backbone)
  return write_comparison(result, settings.out, full_size)


def _compare_once(settings: CompareSettings, seed: int | None = None) -> dict[str, Any]:
  """`benchmark_compare` on the settings' model + index + dataset, else on the demo's (with
  `seed`: its own workdir, trained with that seed)."""
  from landmark_jax.config import apply_overrides, load_config
  from landmark_jax.data import GLDv2Source, source_for
  from landmark_jax.train.checkpoints import load_trained

  checkpoint, index_dir, root = settings.checkpoint, settings.index, settings.root
  on_demo = checkpoint is None and index_dir is None
  if on_demo:
    from landmark_jax.data.demo_dataset import demo_dataset
    from landmark_jax.stages import build_index

    demo_dir = pathlib.Path(settings.demo_workdir)
    if seed is not None:
      demo_dir = demo_dir / f"seed-{seed}"
    if not build_index.is_done(demo_dir / "index"):
      # reuses every finished step
      run_demo_as_its_command(demo_dir, () if seed is None else (f"seed={seed}",))
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
  return benchmark_compare(
    trained,
    index,
    source_for(trained.config.data, "train", trained.label_map),
    split(settings.val_csv),
    split(settings.test_csv),
    delf_config,
    target_specificity=settings.target_specificity,
    max_queries=settings.max_queries,
    verify_budget=settings.verify_budget,
    verify_candidates=settings.verify_candidates,
    # A given index's own reference photos, where it has some; the demo's: DELF's
    store=None if on_demo else index.local_features,
    seed=0 if seed is None else seed,
  )
