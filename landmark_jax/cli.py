"""`landmark-jax` command line: each subcommand is a thin call into the library."""

from __future__ import annotations

import argparse
import sys


def _demo(args) -> int:
  from landmark_jax.demo import run_demo
  run_demo(image_size=args.image_size)
  return 0


def _train(args) -> int:
  import logging
  from landmark_jax.config import load_config
  from landmark_jax.train.loop import train
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
  config = load_config(args.config, args.overrides)
  result = train(config, args.workdir)
  print(f"trained {result.steps} steps in {args.workdir}; {result.skipped_images} unreadable "
        "images skipped")
  if result.holdout:
    print("held-out: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                   for k, v in result.holdout.items()))
  return 0


def _benchmark_model(args) -> int:
  from landmark_jax.benchmarks.model_speed import benchmark_model
  from landmark_jax.benchmarks.timing import format_table, machine_description, write_json
  rows = benchmark_model(args.backbone, batch_size=args.batch_size, image_size=args.image_size,
                         repeats=args.repeats, dtype=args.dtype,
                         compare_torch=not args.no_torch)
  print(f"# {args.backbone} at {args.image_size}×{args.image_size}, batch {args.batch_size}: "
        f"{machine_description()}")
  print(format_table(rows, ["framework", "pass", "dtype", "seconds/batch", "images/s",
                            "vs torch"]))
  if args.json:
    write_json(args.json, rows)
  return 0


def _benchmark_data(args) -> int:
  from landmark_jax.benchmarks.data_speed import benchmark_data
  from landmark_jax.benchmarks.timing import format_table, machine_description, write_json
  from landmark_jax.data import GLDv2Source
  from landmark_jax.data.demo_dataset import demo_dataset
  root = args.root or demo_dataset()
  source = GLDv2Source(root, csv=args.csv, non_landmark_csv=args.non_landmark_csv)
  rows = benchmark_data(source, crop_size=args.crop_size, num_images=args.num_images)
  print(f"# {len(source)} images from {root}, crop {args.crop_size}: {machine_description()}")
  print(format_table(rows, ["workers", "jpeg draft", "images/s", "images/s per process",
                            "vs no draft"]))
  if args.json:
    write_json(args.json, rows)
  return 0


def _benchmark_train(args) -> int:
  from landmark_jax.benchmarks.timing import format_table, machine_description, write_json
  from landmark_jax.benchmarks.train_speed import benchmark_train
  cases = [(b, s, n) for b, s, n in (c.split(":") for c in args.cases)]
  rows = benchmark_train([(b, int(s), int(n)) for b, s, n in cases], num_classes=args.num_classes,
                         repeats=args.repeats, dtype=args.dtype)
  print(f"# train step, {args.num_classes} classes: {machine_description()}")
  print(format_table(rows, ["backbone", "image", "batch", "loss", "seconds/step", "images/s",
                            "overhead vs softmax %"]))
  if args.json:
    write_json(args.json, rows)
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="landmark-jax",
      description="Large-scale landmark recognition via deep metric learning, in JAX.")
  commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

  demo = commands.add_parser("demo", help="run the library end to end on bundled data")
  demo.add_argument("--image-size", type=int, default=128)
  demo.set_defaults(run=_demo)

  train = commands.add_parser(
      "train", help="train LandmarkNet (resumes from the latest checkpoint in --workdir)")
  train.add_argument("--config", required=True,
                     help="a config file, or a name in configs/ (tiny_cpu, wrn50_2_gldv2)")
  train.add_argument("--workdir", required=True, help="checkpoints, logs and label map go here")
  train.add_argument("overrides", nargs="*", metavar="key=value",
                     help="config overrides, e.g. optim.lr_backbone=0.01 pipeline.batch_size=64")
  train.set_defaults(run=_train)

  benchmark = commands.add_parser("benchmark", help="speed/memory benchmarks (ratios vs a baseline)")
  suites = benchmark.add_subparsers(dest="suite", required=True, metavar="SUITE")
  model = suites.add_parser(
      "model", help="backbone forward and forward+backward images/s, JAX vs torchvision")
  model.add_argument("--backbone", default="wide_resnet50_2")
  model.add_argument("--batch-size", type=int, default=8)
  model.add_argument("--image-size", type=int, default=224)
  model.add_argument("--repeats", type=int, default=5)
  model.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  model.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
  model.add_argument("--json", help="also write the rows to this JSON file")
  model.set_defaults(run=_benchmark_model)

  train_bench = suites.add_parser(
      "train", help="train-step images/s, softmax-only vs softmax + center loss")
  train_bench.add_argument("--cases", nargs="+", default=["resnet_tiny:64:32",
                                                          "wide_resnet50_2:224:8"],
                           help="backbone:image_size:batch_size")
  train_bench.add_argument("--num-classes", type=int, default=1000)
  train_bench.add_argument("--repeats", type=int, default=5)
  train_bench.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  train_bench.add_argument("--json", help="also write the rows to this JSON file")
  train_bench.set_defaults(run=_benchmark_train)

  data = suites.add_parser(
      "data", help="decode+augment images/s: JPEG draft on/off, 0/1/2 worker processes")
  data.add_argument("--root", help="a GLDv2-layout folder (default: the embedded demo dataset)")
  data.add_argument("--csv", default="train.csv")
  data.add_argument("--non-landmark-csv", default=None)
  data.add_argument("--crop-size", type=int, default=224)
  data.add_argument("--num-images", type=int, default=240)
  data.add_argument("--json", help="also write the rows to this JSON file")
  data.set_defaults(run=_benchmark_data)
  return parser


def main(argv: list[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  return args.run(args)


if __name__ == "__main__":
  sys.exit(main())
