"""``landmark-jax benchmark model | train | index | compare | data | gldv2-dry-run | device |
serve``:
speed and memory, reported as ratios against a baseline measured in the same run."""

from __future__ import annotations

import argparse
import os
import pathlib

from landmark_jax.baselines.delf.config import PRESETS
from landmark_jax.cli.common import (
  non_negative_float,
  non_negative_int,
  positive_float,
  positive_int,
  probability,
  setup_logging,
)
from landmark_jax.errors import UsageError


def _benchmark_model(args) -> int:
  from landmark_jax.benchmarks.model_speed import benchmark_model
  from landmark_jax.benchmarks.timing import format_table, machine_description, write_json

  rows = benchmark_model(
    args.backbone,
    batch_size=args.batch_size,
    image_size=args.image_size,
    repeats=args.repeats,
    dtype=args.dtype,
    compare_torch=not args.no_torch,
  )
  print(
    f"# {args.backbone} at {args.image_size}×{args.image_size}, batch {args.batch_size}: "
    f"{machine_description()}"
  )
  print(format_table(rows, ["framework", "pass", "dtype", "seconds/batch", "images/s", "vs torch"]))
  if args.json:
    write_json(args.json, rows)
  return 0


def _benchmark_data(args) -> int:
  from landmark_jax.benchmarks.data_speed import run_data_benchmark
  from landmark_jax.benchmarks.timing import format_table, machine_description, write_json

  measured = run_data_benchmark(
    args.root,
    csv=args.csv,
    non_landmark_csv=args.non_landmark_csv,
    packed_dirs=args.packed_dir or (),
    crop_size=args.crop_size,
    num_images=args.num_images,
    batch_size=DATA_BATCH,
  )
  print(
    f"# {measured.images} images from {measured.root}, crop {args.crop_size}: "
    f"{machine_description()}"
  )
  print(
    format_table(
      measured.draft, ["workers", "jpeg draft", "images/s", "images/s per process", "vs no draft"]
    )
  )
  if args.packed_dir:
    print(
      f"\n# the training pipeline (jpeg draft on), the same {measured.images} images from "
      f"the JPEG files and from {', '.join(args.packed_dir)}"
    )
    print(format_table(measured.packed, ["source", "workers", "images/s", "vs JPEG files"]))
  if args.json:
    rows = (
      {"draft": measured.draft, "packed": measured.packed} if args.packed_dir else measured.draft
    )
    write_json(args.json, rows)
  return 0


def _benchmark_train(args) -> int:
  from landmark_jax.benchmarks.timing import format_table, machine_description, write_json
  from landmark_jax.benchmarks.train_speed import benchmark_train

  rows = benchmark_train(
    args.cases, num_classes=args.num_classes, repeats=args.repeats, dtype=args.dtype
  )
  print(f"# train step, {args.num_classes} classes: {machine_description()}")
  print(
    format_table(
      rows,
      ["backbone", "image", "batch", "loss", "seconds/step", "images/s", "overhead vs softmax %"],
    )
  )
  if args.json:
    write_json(args.json, rows)
  return 0


def _benchmark_index(args) -> int:
  from landmark_jax.benchmarks.index_speed import benchmark_index, benchmark_query_latency
  from landmark_jax.benchmarks.timing import format_table, machine_description, write_json

  rows = benchmark_index(args.sizes, num_queries=args.queries)
  print(f"# centroid search, 512-d, {args.queries} queries: {machine_description()}")
  print(
    format_table(
      rows,
      [
        "centroids",
        "backend",
        "build s",
        "index MB",
        "queries/s",
        "recall@1",
        "setting",
        "exact scores ×",
      ],
    )
  )
  latency = []
  if not args.skip_latency:
    latency = benchmark_query_latency(args.backbone)
    print(f"\n# one photo: embed ({args.backbone}) + search")
    print(
      format_table(
        latency,
        ["backbone", "image", "index", "embed ms", "search ms", "total ms", "search share %"],
      )
    )
  if args.json:
    write_json(args.json, {"search": rows, "latency": latency})
  return 0


def _benchmark_compare(args) -> int:
  from landmark_jax.benchmarks.compare import CompareSettings, compare

  setup_logging()
  settings = CompareSettings(
    checkpoint=args.checkpoint,
    index=args.index,
    root=args.root,
    val_csv=args.val_csv,
    test_csv=args.test_csv,
    non_landmark_csv=args.non_landmark_csv,
    attention=args.attention,
    preset=args.preset,
    overrides=tuple(args.overrides),
    target_specificity=args.target_specificity,
    max_queries=args.max_queries,
    full_size_backbone=args.full_size_backbone,
    verify_budget=args.verify_budget,
    verify_candidates=args.verify_candidates,
    seeds=tuple(args.seeds or ()),
    demo_workdir=args.demo_workdir,
    out=args.out,
  )
  print(compare(settings))
  return 0


def _benchmark_gldv2_dry_run(args) -> int:
  from landmark_jax.benchmarks.gldv2_dry_run import DryRunSettings, run_dry_run
  from landmark_jax.benchmarks.timing import format_table, write_json

  out = pathlib.Path(args.out)
  settings = DryRunSettings(
    out=out,
    steps=tuple(args.steps),
    scale=args.scale,
    workers=args.workers,
    clean_fraction=args.clean_fraction,
    compile_backbone=None if args.compile_backbone == "none" else args.compile_backbone,
    compile_batch=args.compile_batch,
    tiny_batch=args.tiny_batch,
    shuffle_records=args.shuffle_records,
    seed=args.seed,
  )
  payload = run_dry_run(settings)
  print(
    f"\n# GLDv2 dry run, {payload['sizes']['photos']:,} photos of "
    f"{payload['sizes']['landmarks']:,} landmarks: {payload['machine']}"
  )
  print(
    format_table(
      payload["steps"],
      ["step", "what", "seconds", "cpu seconds", "peak RSS MB", "added MB", "workers peak MB"],
    )
  )
  path = pathlib.Path(args.json) if args.json else out / "dry_run.json"
  write_json(str(path), payload)
  print(f"\n{path}")
  return 0


def _benchmark_cpu_kernels(args) -> int:
  import importlib.util

  if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
    raise UsageError(
      "benchmark cpu-kernels compares with torchvision: pip install 'landmark-jax[torch]' first"
    )
  from landmark_jax.benchmarks.cpu_kernels import benchmark_cpu_kernels
  from landmark_jax.benchmarks.timing import format_table, machine_description, write_json

  rows = benchmark_cpu_kernels(
    args.backbone,
    image_size=args.image_size,
    batch_sizes=tuple(args.batch_sizes),
    repeats=args.repeats,
    rounds=args.rounds,
  )
  print(f"# {args.backbone} at {args.image_size}², float32: {machine_description()}")
  print(format_table(rows, ["setting", "what", "jax ms", "torch ms", "jax speed vs torch"]))
  if args.json:
    write_json(args.json, rows)
  return 0


def _benchmark_device(args) -> int:
  # Before JAX starts its backend: PyTorch measures first in this process and needs device
  # memory that JAX would otherwise take three quarters of at start-up.
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  from landmark_jax.benchmarks.device_check import format_report, run_device_check, settings_from
  from landmark_jax.benchmarks.timing import write_json

  settings = settings_from(
    args.smoke,
    backbone=args.backbone,
    image_sizes=tuple(args.image_sizes or ()) or None,
    batch_size=args.batch_size,
    num_classes=args.num_classes,
    inference_batch=args.inference_batch,
    steps=args.steps,
    repeats=args.repeats,
    compare_torch=False if args.no_torch else None,
    pipeline_workers=tuple(args.workers or ()) or None,
    pipeline_root=args.root,
    peak_tflops=args.peak_tflops,
  )
  payload = run_device_check(settings, report=lambda part: print(f"… {part}", flush=True))
  print()
  print(format_report(payload))
  pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
  write_json(args.json, payload)
  print(f"\n{args.json}")
  return 0


def _benchmark_serve(args) -> int:
  from landmark_jax.benchmarks.serve_speed import ServeBenchSettings, benchmark_serve, phase_rows
  from landmark_jax.benchmarks.timing import format_table, machine_description, write_json

  settings = ServeBenchSettings(
    seconds=args.seconds,
    warmup_seconds=args.warmup_seconds,
    clients=args.clients,
    max_batch=args.max_batch,
    max_wait_ms=args.max_wait_ms,
    decode_workers=args.decode_workers,
    backbone=args.backbone,
    image_size=args.image_size,
    repeats=args.repeats,
  )
  result = benchmark_serve(settings)
  gap = result["gap"]
  print(
    f"# {args.backbone} at {args.image_size}², 640×480 JPEGs, {args.clients} clients, "
    f"{result['window_s']:.0f} s: {machine_description()}; load average "
    + ", ".join(f"{x:.2f}" for x in result["load_average"])
  )
  print(format_table(result["rows"], ["what", "photos/s", "vs raw"]))
  print(
    format_table(
      [
        {
          "service / raw": result["ratio"],
          "decode share of the per-photo budget": result["decode_share_of_budget"],
          "mean batch": result["mean_batch_size"],
          "device busy share": gap["device_busy_share"],
          "full-batch call, service / raw": gap["full_batch_slowdown_vs_raw"],
          "p50 ms": result["latency_p50_ms"],
          "p99 ms": result["latency_p99_ms"],
          "answered": result["requests_answered"],
        }
      ],
      [
        "service / raw",
        "decode share of the per-photo budget",
        "mean batch",
        "device busy share",
        "full-batch call, service / raw",
        "p50 ms",
        "p99 ms",
        "answered",
      ],
    )
  )
  print("\n# what the gap is made of (means)")
  print(format_table(phase_rows(result), ["part", "ms"]))
  if args.json:
    write_json(args.json, result)
  return 0


def dry_run_backbone(text: str) -> str:
  return text if text == "none" else backbone(text)


def backbone(text: str) -> str:
  """A registered backbone name (checked when parsing, so a typo costs no set-up)."""
  from landmark_jax.models import BACKBONES  # here: `--help` stays fast

  if text not in BACKBONES:
    raise argparse.ArgumentTypeError(
      f"unknown backbone {text!r}; registered: {', '.join(sorted(BACKBONES))}"
    )
  return text


def train_case(text: str) -> tuple[str, int, int]:
  """``backbone:image_size:batch_size`` → (name, image size, batch size)."""
  parts = text.split(":")
  if len(parts) != 3:
    raise argparse.ArgumentTypeError(f"{text!r} is not backbone:image_size:batch_size")
  name, image_size, batch_size = parts
  try:
    sizes = positive_int(image_size), positive_int(batch_size)
  except (ValueError, argparse.ArgumentTypeError):  # not a number, or not above 0
    raise argparse.ArgumentTypeError(
      f"{text!r}: image_size and batch_size must be positive integers"
    ) from None
  return (backbone(name), *sizes)


DTYPES = ["float32", "bfloat16"]
DATA_BATCH = 8  # `benchmark data`: images per batch; throughput is timed over whole batches


def images_to_time(text: str) -> int:
  value = positive_int(text)
  if value < DATA_BATCH:
    raise argparse.ArgumentTypeError(f"{text} is less than one batch ({DATA_BATCH} images)")
  return value


def register(commands, debug) -> None:
  benchmark = commands.add_parser(
    "benchmark", parents=[debug], help="speed/memory benchmarks (ratios vs a baseline)"
  )
  suites = benchmark.add_subparsers(dest="suite", required=True, metavar="SUITE")
  model = suites.add_parser(
    "model",
    parents=[debug],
    help="backbone forward and forward+backward images/s, JAX vs torchvision",
  )
  model.add_argument(
    "--backbone",
    type=backbone,
    default="wide_resnet50_2",
    help="a registered backbone (default: wide_resnet50_2)",
  )
  model.add_argument(
    "--batch-size", type=positive_int, default=8, help="images per step (default: 8)"
  )
  model.add_argument(
    "--image-size",
    type=positive_int,
    default=224,
    help="square input side in pixels (default: 224)",
  )
  model.add_argument(
    "--repeats",
    type=positive_int,
    default=5,
    help="timed runs per measurement, after a warm-up (default: 5)",
  )
  model.add_argument(
    "--dtype",
    default="float32",
    choices=DTYPES,
    help="compute dtype of the JAX backbone (default: float32)",
  )
  model.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
  model.add_argument("--json", help="also write the rows to this JSON file")
  model.set_defaults(run=_benchmark_model)

  train_bench = suites.add_parser(
    "train", parents=[debug], help="train-step images/s, softmax-only vs softmax + center loss"
  )
  train_bench.add_argument(
    "--cases",
    type=train_case,
    nargs="+",
    default=[("resnet_tiny", 64, 32), ("wide_resnet50_2", 224, 8)],
    help="backbone:image_size:batch_size, one or more (default: "
    "resnet_tiny:64:32 wide_resnet50_2:224:8)",
  )
  train_bench.add_argument(
    "--num-classes",
    type=positive_int,
    default=1000,
    help="landmark classes of the classifier (default: 1000)",
  )
  train_bench.add_argument(
    "--repeats",
    type=positive_int,
    default=5,
    help="timed steps per case, after a warm-up (default: 5)",
  )
  train_bench.add_argument(
    "--dtype",
    default="float32",
    choices=DTYPES,
    help="compute dtype of the backbone (default: float32)",
  )
  train_bench.add_argument("--json", help="also write the rows to this JSON file")
  train_bench.set_defaults(run=_benchmark_train)

  index_bench = suites.add_parser(
    "index", parents=[debug], help="ScaNN vs exact search at recall@1 ≥ 0.99; embed+search latency"
  )
  index_bench.add_argument(
    "--sizes",
    type=positive_int,
    nargs="+",
    default=[10_000, 100_000, 1_000_000],
    help="numbers of 512-d centroids to index, one or more (default: 10000 100000 1000000)",
  )
  index_bench.add_argument(
    "--queries", type=positive_int, default=1000, help="queries per size (default: 1000)"
  )
  index_bench.add_argument(
    "--backbone",
    type=backbone,
    default="wide_resnet50_2",
    help="the model of the embed+search latency (default: wide_resnet50_2)",
  )
  index_bench.add_argument(
    "--skip-latency", action="store_true", help="skip the one-photo embed+search latency"
  )
  index_bench.add_argument("--json", help="also write the rows to this JSON file")
  index_bench.set_defaults(run=_benchmark_index)

  compare = suites.add_parser(
    "compare",
    parents=[debug],
    help="centroid recognizer vs the DELF-style baseline: per-query time by "
    "part, index memory, sensitivity/specificity (table + PNG)",
  )
  compare.add_argument(
    "--checkpoint", help="training workdir (default: the demo's; trained first if missing)"
  )
  compare.add_argument("--index", help="its centroid index (with --checkpoint and --root)")
  compare.add_argument(
    "--root",
    help="GLDv2-layout folder holding the validation and test "
    "CSVs (default with the demo: the embedded dataset)",
  )
  compare.add_argument(
    "--val-csv",
    default="val.csv",
    help="under --root: the photos that calibrate both thresholds (default: val.csv)",
  )
  compare.add_argument(
    "--test-csv",
    default="test.csv",
    help="under --root: the photos both recognizers answer (default: test.csv)",
  )
  compare.add_argument(
    "--non-landmark-csv",
    default=None,
    help="under --root: non-landmark photo ids added to both splits (default: none)",
  )
  compare.add_argument(
    "--attention",
    default="trained",
    choices=["trained", "feature_norm"],
    help="DELF's keypoint attention: a trained head, or the feature norm (default: trained)",
  )
  compare.add_argument(
    "--preset",
    choices=sorted(PRESETS),
    help="DELF settings: 'delf' (DELF's own: 512 px, 7 scales, 1000 "
    "features; the default config's) or 'demo' (sized for the "
    "embedded 128-px photos; tiny_cpu's); default: the checkpoint "
    "config's own `delf` section",
  )
  compare.add_argument(
    "--target-specificity",
    type=probability,
    default=None,
    help="default: the index's calibration target",
  )
  compare.add_argument(
    "--max-queries",
    type=positive_int,
    default=None,
    help="answer at most this many test photos (default: all)",
  )
  compare.add_argument(
    "--full-size-backbone",
    metavar="NAME",
    type=backbone,
    help="also time one photo's forward passes with this backbone at the "
    "paper's sizes (224² crop vs DELF's 512-px 7-scale pyramid)",
  )
  compare.add_argument(
    "--verify-budget",
    type=probability,
    default=0.3,
    metavar="SHARE",
    help="verified answers: the most share of queries verification may settle, the band "
    "around η and the inliers needed calibrated within it (default: 0.3)",
  )
  compare.add_argument(
    "--verify-candidates",
    type=positive_int,
    default=2,
    metavar="C",
    help="verified answers: how many of the best candidates are matched (default: 2)",
  )
  compare.add_argument(
    "--seeds",
    nargs="+",
    type=non_negative_int,
    metavar="S",
    help="without --checkpoint/--index: the demo trained once per seed (in "
    "<demo-workdir>/seed-S, each comparison in <out>/seed-S) and the mean of their tables "
    "in --out (default: the demo as it is, once)",
  )
  compare.add_argument(
    "--demo-workdir",
    default="workdir/demo",
    help="without --checkpoint/--index: the demo's workdir, run first if "
    "it has no index (default: workdir/demo)",
  )
  compare.add_argument(
    "--out",
    default="workdir/compare",
    help="compare.md, compare.json and compare.png go here (default: workdir/compare, "
    "under the current folder)",
  )
  compare.add_argument(
    "overrides",
    nargs="*",
    metavar="key=value",
    help="DelfConfig fields, e.g. max_features=500 'scales=(0.5,1.0)'",
  )
  compare.set_defaults(run=_benchmark_compare)

  data = suites.add_parser(
    "data",
    parents=[debug],
    help="decode+augment images/s: JPEG draft on/off, 0/1/2 worker processes",
  )
  data.add_argument("--root", help="a GLDv2-layout folder (default: the embedded demo dataset)")
  data.add_argument(
    "--csv", default="train.csv", help="under the folder: the image list (default: train.csv)"
  )
  data.add_argument(
    "--non-landmark-csv",
    default=None,
    help="under the folder: non-landmark photo ids to add (default: none)",
  )
  data.add_argument(
    "--crop-size",
    type=positive_int,
    default=224,
    help="side of the random crop in pixels (default: 224)",
  )
  data.add_argument(
    "--num-images",
    type=images_to_time,
    default=240,
    help=f"images decoded per setting, at least one batch of {DATA_BATCH} (default: 240)",
  )
  data.add_argument(
    "--packed-dir",
    metavar="DIR",
    nargs="+",
    help="also time the training pipeline reading these photos from each "
    "packed folder (`prepare gldv2 --pack`; relative: in the dataset "
    "folder) against the JPEG files, at the same worker counts",
  )
  data.add_argument("--json", help="also write the rows to this JSON file")
  data.set_defaults(run=_benchmark_data)

  from landmark_jax.benchmarks.gldv2_dry_run import STEPS  # light: NumPy only

  dry_run = suites.add_parser(
    "gldv2-dry-run",
    parents=[debug],
    help="every metadata-sized step at Google Landmarks v2's size on synthetic metadata "
    "(no photos): time and peak memory of each",
  )
  dry_run.add_argument(
    "--out",
    default="workdir/gldv2-dry-run",
    help="the synthetic CSVs, embeddings.npy and dry_run.json go here "
    "(default: workdir/gldv2-dry-run)",
  )
  dry_run.add_argument(
    "--steps",
    nargs="+",
    choices=STEPS,
    default=list(STEPS),
    metavar="STEP",
    help=f"steps to run, with what they need first (default: all): {', '.join(STEPS)}",
  )
  dry_run.add_argument(
    "--scale",
    type=probability,
    default=1.0,
    help="GLDv2's sizes times this, in (0, 1] (default: 1)",
  )
  dry_run.add_argument(
    "--workers",
    type=non_negative_int,
    default=2,
    help="cleaning's worker processes; 0 cleans in this process (default: 2)",
  )
  dry_run.add_argument(
    "--clean-fraction",
    type=probability,
    default=1.0,
    help="clean this share of the landmarks, drawn at random, and scale "
    "the time to all of them (default: 1)",
  )
  dry_run.add_argument(
    "--compile-backbone",
    type=dry_run_backbone,
    default="wide_resnet50_2",
    help="the backbone of the compiled step's memory analysis, or 'none' "
    "(default: wide_resnet50_2)",
  )
  dry_run.add_argument(
    "--compile-batch",
    type=positive_int,
    default=256,
    help="global batch of the compiled step (default: 256, the paper's)",
  )
  dry_run.add_argument(
    "--tiny-batch",
    type=positive_int,
    default=32,
    help="batch of the real CPU step with wide_resnet_tiny (default: 32)",
  )
  dry_run.add_argument(
    "--shuffle-records",
    type=positive_int,
    default=100_000,
    help="records read through the shuffled dataset (default: 100000)",
  )
  dry_run.add_argument(
    "--seed",
    type=non_negative_int,
    default=0,
    help="seed of the synthetic data and the shuffle (default: 0)",
  )
  dry_run.add_argument("--json", help="write the rows here (default: OUT/dry_run.json)")
  dry_run.set_defaults(run=_benchmark_gldv2_dry_run)

  kernels = suites.add_parser(
    "cpu-kernels",
    parents=[debug],
    help="CPU serving: forward and one query's embedding, JAX vs torchvision, with XLA's "
    "default CPU kernels and with the library's choice",
  )
  kernels.add_argument(
    "--backbone",
    type=backbone,
    default="wide_resnet50_2",
    help="a registered backbone (default: wide_resnet50_2)",
  )
  kernels.add_argument(
    "--image-size",
    type=positive_int,
    default=224,
    help="square input side in pixels (default: 224)",
  )
  kernels.add_argument(
    "--batch-sizes",
    type=positive_int,
    nargs="+",
    default=[1, 8],
    help="forward batches; the first 1 is also the query's (default: 1 8)",
  )
  kernels.add_argument(
    "--repeats",
    type=positive_int,
    default=5,
    help="timed calls per figure, after a warm-up (default: 5)",
  )
  kernels.add_argument(
    "--rounds",
    type=positive_int,
    default=2,
    help="processes per setting, run in turns; medians (default: 2)",
  )
  kernels.add_argument("--json", help="also write the rows to this JSON file")
  kernels.set_defaults(run=_benchmark_cpu_kernels)

  device = suites.add_parser(
    "device",
    parents=[debug],
    help="the accelerator check: WRN-50-2 bf16 train step images/s and MFU, vs torchvision "
    "AMP; center-loss overhead; inference; input pipeline (minutes on one GPU)",
  )
  device.add_argument(
    "--smoke",
    action="store_true",
    help="the same code on tiny sizes (resnet_tiny, 32 px, batch 8): seconds "
    "on a CPU, to check that it runs",
  )
  device.add_argument("--backbone", type=backbone, help="default: wide_resnet50_2")
  device.add_argument(
    "--image-sizes",
    type=positive_int,
    nargs="+",
    metavar="PIXELS",
    help="square input sides of the train step (default: 224 256)",
  )
  device.add_argument("--batch-size", type=positive_int, help="train batch (default: 128)")
  device.add_argument(
    "--num-classes", type=positive_int, help="landmark classes (default: 81313, GLDv2-clean's)"
  )
  device.add_argument(
    "--inference-batch", type=positive_int, help="batch of the inference throughput (default: 256)"
  )
  device.add_argument(
    "--steps", type=positive_int, help="consecutive steps per timed run (default: 10)"
  )
  device.add_argument(
    "--repeats",
    type=positive_int,
    help="timed runs per figure, after a warm-up; the median is reported (default: 3)",
  )
  device.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
  device.add_argument(
    "--workers",
    type=non_negative_int,
    nargs="+",
    help="grain worker processes of the input-pipeline rows (default: 8)",
  )
  device.add_argument(
    "--root",
    help="GLDv2-layout photos for the input pipeline (default: "
    "the embedded demo photos, 128 px: decoding real photos "
    "costs more)",
  )
  device.add_argument(
    "--peak-tflops",
    type=positive_float,
    help="the chip's dense bf16 peak for the MFU (default: from a datasheet "
    "table by device name; H100, H200, A100, L4, TPUs, …)",
  )
  device.add_argument(
    "--json",
    default="workdir/device-check.json",
    help="the JSON report (default: workdir/device-check.json)",
  )
  device.set_defaults(run=_benchmark_device)

  serve = suites.add_parser(
    "serve",
    parents=[debug],
    help="the service's photos/s under concurrent clients against the raw batched forward, "
    "and what the gap is made of (decode, batching wait, transfer, HTTP)",
  )
  serve.add_argument(
    "--seconds", type=positive_float, default=30.0, help="the measured window (default: 30)"
  )
  serve.add_argument(
    "--warmup-seconds",
    type=non_negative_float,
    default=5.0,
    help="load before the window (default: 5)",
  )
  serve.add_argument(
    "--clients", type=positive_int, default=16, help="concurrent clients (default: 16)"
  )
  serve.add_argument(
    "--max-batch",
    type=positive_int,
    default=8,
    help="the service's --max-batch and the raw forward's batch (default: 8)",
  )
  serve.add_argument(
    "--max-wait-ms",
    type=non_negative_float,
    default=5.0,
    help="the service's --max-wait-ms (default: 5, the service's)",
  )
  serve.add_argument(
    "--decode-workers",
    type=positive_int,
    default=None,
    help="the service's --decode-workers (default: the service's, the cores up to 8)",
  )
  serve.add_argument(
    "--backbone",
    type=backbone,
    default="wide_resnet50_2",
    help="a registered backbone, random weights (default: wide_resnet50_2)",
  )
  serve.add_argument(
    "--image-size", type=positive_int, default=224, help="the crop side (default: 224)"
  )
  serve.add_argument(
    "--repeats",
    type=positive_int,
    default=10,
    help="raw forward calls timed before and after the load, each (default: 10)",
  )
  serve.add_argument("--json", help="also write every figure to this JSON file")
  serve.set_defaults(run=_benchmark_serve)
