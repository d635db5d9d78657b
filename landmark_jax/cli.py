"""`landmark-jax` command line: each subcommand is a thin call into the library."""

from __future__ import annotations

import argparse
import pathlib
import sys


def _demo(args) -> int:
  import logging
  from landmark_jax.demo import run_demo
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
  run_demo(args.workdir, fresh=args.fresh, overrides=tuple(args.overrides))
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


def _source_from_args(args, label_map):
  """A GLDv2 (--root/--csv) or image-folder (--folder) source, or None when neither is given
  (each command then falls back to a split of the checkpoint's own data)."""
  from landmark_jax.data import GLDv2Source, ImageFolderSource
  if getattr(args, "folder", None):
    return ImageFolderSource(args.folder, label_map=label_map)
  if getattr(args, "root", None):
    return GLDv2Source(args.root, csv=args.csv, non_landmark_csv=args.non_landmark_csv,
                       label_map=label_map)
  return None


def _embed(args) -> int:
  from landmark_jax.index.embed import embed_source
  from landmark_jax.train.loop import build_source
  from landmark_jax.train.trained import load_trained
  trained = load_trained(args.checkpoint)
  source = (_source_from_args(args, trained.label_map)
            or build_source(trained.config.data, trained.label_map))
  result = embed_source(trained, source, args.out, batch_size=args.batch_size,
                        shard_size=args.shard_size, num_workers=args.num_workers)
  print(f"{len(result.ids)} embeddings ({result.embeddings.shape[1]}-d) in {args.out}; "
        f"{len(result.skipped)} unreadable images skipped")
  return 0


def _clean(args) -> int:
  from landmark_jax.config import apply_overrides
  from landmark_jax.index.centroids import clean_embeddings, report_markdown, write_cleaning
  from landmark_jax.index.cleaning import CleaningConfig
  from landmark_jax.index.embed import load_embeddings
  config = apply_overrides(CleaningConfig(), args.overrides)
  embeddings = load_embeddings(args.embeddings)
  report = write_cleaning(clean_embeddings(embeddings, config), embeddings.label_map, args.out,
                          embeddings.checkpoint)
  print(report_markdown(report))
  print(f"cleaned dataset, report and centroids written to {args.out}")
  return 0


def _build_index(args) -> int:
  from landmark_jax.config import apply_overrides
  from landmark_jax.index import IndexConfig
  from landmark_jax.index.centroids import build_centroid_index
  config = apply_overrides(IndexConfig(), args.overrides)
  index = build_centroid_index(args.clean, config, args.checkpoint_id, args.landmarks_csv)
  index.save(args.out)
  print(f"index of {len(index)} centroids ({index.backend}) written to {args.out}")
  return 0


def _calibrate(args) -> int:
  from landmark_jax.data import GLDv2Source
  from landmark_jax.recognize import Recognizer, calibrate
  recognizer = Recognizer.load(args.checkpoint, args.index, eta=float("-inf"))  # being chosen
  source = _source_from_args(args, recognizer.label_map)
  if source is None:
    data = recognizer.trained.config.data
    if data.kind != "demo":
      raise SystemExit("calibrate needs a validation set: --root/--csv or --folder")
    from landmark_jax.data.demo_dataset import demo_dataset
    source = GLDv2Source(data.root or demo_dataset(), csv="val.csv", label_map=recognizer.label_map)
  result = calibrate(recognizer, source, args.target_specificity)
  recognizer.index.with_metadata(eta=result["eta"], calibration=result).save(args.index)
  print("\n".join(f"{k:>20}: {v}" for k, v in result.items()))
  print(f"eta stored in {args.index}/manifest.json")
  return 0


def _recognize(args) -> int:
  import json
  from landmark_jax.data import ImageDecodeError
  from landmark_jax.recognize import Recognizer
  recognizer = Recognizer.load(args.checkpoint, args.index, top_k=args.top_k,
                               radius_km=args.radius_km)
  location = None
  if args.latitude is not None and args.longitude is not None:
    from landmark_jax.geo import Location
    location = Location(args.latitude, args.longitude)
  for path in args.paths:
    try:
      prediction = recognizer.recognize([path], [location], use_exif=not args.no_exif)[0]
    except ImageDecodeError as e:
      print(json.dumps({"path": path, "error": str(e)}) if args.json else f"{path}\terror: {e}")
      continue
    if args.json:
      print(json.dumps({"path": path, **prediction.to_json()}))
    else:
      def label(landmark_id, name):
        return f"{name} ({landmark_id})" if name else str(landmark_id)
      answer = ("non-landmark" if not prediction.is_landmark
                else label(prediction.landmark_id, prediction.name))
      others = ", ".join(f"{label(c.landmark_id, c.name)} {c.score:.3f}"
                         for c in prediction.candidates)
      print(f"{path}\t{answer}\t{prediction.score:.3f}\t[{others}]")
  return 0


def _evaluate(args) -> int:
  from landmark_jax.data import GLDv2Source
  from landmark_jax.eval.report import (
      emulate_collection, load_locations, photo_locations, score_photos, write_report)
  from landmark_jax.recognize import Recognizer
  from landmark_jax.train.loop import build_source
  recognizer = Recognizer.load(args.checkpoint, args.index, eta=args.eta)
  source = _source_from_args(args, recognizer.label_map)
  data = recognizer.trained.config.data
  if source is None:
    if data.kind != "demo":
      raise SystemExit("evaluate needs a test set: --root/--csv or --folder")
    from landmark_jax.data.demo_dataset import demo_dataset
    source = GLDv2Source(data.root or demo_dataset(), csv="test.csv", label_map=recognizer.label_map)
  if args.landmark_share:
    source = emulate_collection(source, args.landmark_share, seed=args.seed)
  training = build_source(data, recognizer.trained.label_map)
  counts = training.images_per_landmark()
  geo_scored = None
  if args.geo or args.locations_csv:
    table = load_locations(args.locations_csv) if args.locations_csv else None
    geo_scored = score_photos(recognizer, source, photo_locations(source, table))
  write_report(score_photos(recognizer, source), recognizer.eta, args.out,
               train_counts=counts, rare_threshold=args.rare_threshold,
               categories=training.categories or None, geo_scored=geo_scored)
  print((pathlib.Path(args.out) / "report.md").read_text())
  print(f"report and plots written to {args.out}")
  return 0


def _evaluate_revisited(args) -> int:
  import json
  from landmark_jax.eval.revisited import evaluate_revisited
  from landmark_jax.recognize import PhotoEmbedder
  from landmark_jax.train.trained import load_trained
  embedder = PhotoEmbedder(load_trained(args.checkpoint), batch_size=args.batch_size)
  result = evaluate_revisited(embedder.embed, args.root, args.gnd, distractors=args.distractors)
  print(json.dumps(result, indent=2))
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2))
  return 0


def _serve(args) -> int:
  import uvicorn
  from landmark_jax.data.sources import read_landmark_table
  from landmark_jax.recognize import Recognizer
  from landmark_jax.serve.app import ServeConfig, batch_buckets, create_app
  config = ServeConfig(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                       max_bytes=args.max_bytes, max_pixels=args.max_pixels)
  names = read_landmark_table(args.landmarks_csv, "name") if args.landmarks_csv else None
  recognizer = Recognizer.load(args.checkpoint, args.index, names=names,
                               buckets=batch_buckets(config.max_batch), radius_km=args.radius_km)
  if args.host not in ("127.0.0.1", "localhost", "::1"):
    print(f"warning: serving on {args.host}, reachable from other machines")
  uvicorn.run(create_app(recognizer, config), host=args.host, port=args.port, log_level="info")
  return 0


def _add_landmarks(args) -> int:
  from landmark_jax.config import apply_overrides
  from landmark_jax.index import CentroidIndex
  from landmark_jax.index.cleaning import CleaningConfig
  from landmark_jax.index.editing import add_landmarks
  from landmark_jax.index.landmarks import load_landmarks_csv
  from landmark_jax.recognize import PhotoEmbedder
  from landmark_jax.train.trained import load_trained
  trained = load_trained(args.checkpoint)
  index = CentroidIndex.load(args.index, expected_dim=trained.model.embedding_dim)
  source = _source_from_args(args, None)
  if source is None:
    raise SystemExit("add-landmarks needs the new landmarks' photos: --root/--csv or --folder")
  edited = add_landmarks(index, PhotoEmbedder(trained).embed_source, source,
                         apply_overrides(CleaningConfig(), args.overrides),
                         load_landmarks_csv(args.landmarks_csv) if args.landmarks_csv else None)
  edited.save(args.index)
  edit = edited.metadata["edits"][-1]
  print(f"added {', '.join(edit['landmarks'])}: {edit['centroids']} centroids from "
        f"{edit['images']} photos; index now {len(edited)} centroids ({args.index})")
  return 0


def _remove_landmarks(args) -> int:
  from landmark_jax.data.sources import _parse_id
  from landmark_jax.index import CentroidIndex
  from landmark_jax.index.editing import remove_landmarks
  index = CentroidIndex.load(args.index)
  edited = remove_landmarks(index, [_parse_id(i) for i in args.landmark_ids])
  edited.save(args.index)
  print(f"removed {edited.metadata['edits'][-1]['centroids']} centroids; index now "
        f"{len(edited)} centroids ({args.index})")
  return 0


def _add_source_args(parser) -> None:
  parser.add_argument("--root", help="a GLDv2-layout folder (default: the checkpoint's data)")
  parser.add_argument("--csv", default="train.csv", help="with --root: the image list")
  parser.add_argument("--non-landmark-csv", default=None, help="with --root: non-landmark ids")
  parser.add_argument("--folder", help="an image folder <folder>/<landmark>/*.jpg instead")


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


def _benchmark_index(args) -> int:
  from landmark_jax.benchmarks.index_speed import benchmark_index, benchmark_query_latency
  from landmark_jax.benchmarks.timing import format_table, machine_description, write_json
  rows = benchmark_index(args.sizes, num_queries=args.queries)
  print(f"# centroid search, 512-d, {args.queries} queries: {machine_description()}")
  print(format_table(rows, ["centroids", "backend", "build s", "index MB", "queries/s",
                            "recall@1", "setting"]))
  latency = []
  if not args.skip_latency:
    latency = benchmark_query_latency(args.backbone)
    print(f"\n# one photo: embed ({args.backbone}) + search")
    print(format_table(latency, ["backbone", "image", "index", "embed ms", "search ms",
                                 "total ms", "search share %"]))
  if args.json:
    write_json(args.json, {"search": rows, "latency": latency})
  return 0


def _benchmark_compare(args) -> int:
  import dataclasses
  import logging
  from landmark_jax.baselines.delf import DelfConfig
  from landmark_jax.benchmarks.compare import (
      DEMO_DELF_CONFIG, benchmark_compare, benchmark_full_size_forward, write_comparison)
  from landmark_jax.config import apply_overrides
  from landmark_jax.data import GLDv2Source
  from landmark_jax.index import CentroidIndex
  from landmark_jax.train.loop import build_source
  from landmark_jax.train.trained import load_trained
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
  on_demo = args.checkpoint is None and args.index is None
  if on_demo:
    from landmark_jax.data.demo_dataset import demo_dataset
    from landmark_jax.demo import run_demo
    demo_dir = pathlib.Path(args.demo_workdir)
    if not (demo_dir / "index" / "manifest.json").is_file():
      run_demo(demo_dir)  # reuses every finished step
    args.checkpoint, args.index = demo_dir / "train", demo_dir / "index"
    args.root = args.root or demo_dataset()
  elif args.checkpoint is None or args.index is None or args.root is None:
    raise SystemExit("give --checkpoint, --index and --root together (or none: the demo)")
  trained = load_trained(args.checkpoint)
  index = CentroidIndex.load(args.index, expected_dim=trained.model.embedding_dim)
  split = lambda csv: GLDv2Source(args.root, csv=csv, non_landmark_csv=args.non_landmark_csv,  # noqa: E731
                                  label_map=trained.label_map)
  preset = args.preset or ("demo" if on_demo else "delf")
  base = DEMO_DELF_CONFIG if preset == "demo" else DelfConfig()
  config = apply_overrides(dataclasses.replace(base, attention=args.attention),
                           args.overrides)
  result = benchmark_compare(trained, index, build_source(trained.config.data, trained.label_map),
                             split(args.val_csv), split(args.test_csv), config,
                             target_specificity=args.target_specificity,
                             max_queries=args.max_queries)
  full_size = None
  if args.full_size_backbone:
    full_size = benchmark_full_size_forward(args.full_size_backbone)
  print(write_comparison(result, args.out, full_size))
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="landmark-jax",
      description="Large-scale landmark recognition via deep metric learning, in JAX.")
  commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

  demo = commands.add_parser(
      "demo", help="the whole pipeline on the embedded dataset: train, clean, index, recognise")
  demo.add_argument("--workdir", default="workdir/demo",
                    help="every step's output; a second run reuses it")
  demo.add_argument("--fresh", action="store_true", help="delete the workdir and start over")
  demo.add_argument("overrides", nargs="*", metavar="key=value",
                    help="overrides of the tiny_cpu training config")
  demo.set_defaults(run=_demo)

  train = commands.add_parser(
      "train", help="train LandmarkNet (resumes from the latest checkpoint in --workdir)")
  train.add_argument("--config", required=True,
                     help="a config file, or a name in configs/ (tiny_cpu, wrn50_2_gldv2)")
  train.add_argument("--workdir", required=True, help="checkpoints, logs and label map go here")
  train.add_argument("overrides", nargs="*", metavar="key=value",
                     help="config overrides, e.g. optim.lr_backbone=0.01 pipeline.batch_size=64")
  train.set_defaults(run=_train)

  embed = commands.add_parser("embed", help="embed a data source with a trained model")
  embed.add_argument("--checkpoint", required=True, help="a training workdir")
  embed.add_argument("--out", required=True, help="output folder of .npy shards (resumable)")
  _add_source_args(embed)
  embed.add_argument("--batch-size", type=int, default=64)
  embed.add_argument("--shard-size", type=int, default=8192)
  embed.add_argument("--num-workers", type=int, default=0)
  embed.set_defaults(run=_embed)

  clean = commands.add_parser(
      "clean", help="per-landmark clustering: cleaned dataset, report and centroids")
  clean.add_argument("--embeddings", required=True, help="the output folder of `embed`")
  clean.add_argument("--out", required=True)
  clean.add_argument("overrides", nargs="*", metavar="key=value",
                     help="CleaningConfig fields, e.g. distance_threshold=0.4 min_cluster_size=3")
  clean.set_defaults(run=_clean)

  build = commands.add_parser("build-index", help="ScaNN index over the cleaned centroids")
  build.add_argument("--clean", required=True, help="the output folder of `clean`")
  build.add_argument("--out", required=True, help="the index folder (written atomically)")
  build.add_argument("--checkpoint-id",
                     help="recorded in the manifest (default: the model the embeddings came from)")
  build.add_argument("--landmarks-csv",
                     help="landmark_id,name,latitude,longitude[,category]: kept with the index "
                          "for names and geo filtering")
  build.add_argument("overrides", nargs="*", metavar="key=value",
                     help="IndexConfig fields, e.g. backend=exact num_leaves=2000")
  build.set_defaults(run=_build_index)

  add = commands.add_parser("add-landmarks",
                            help="add landmarks to a built index from their photos, no retraining")
  add.add_argument("--checkpoint", required=True, help="the model the index was built with")
  add.add_argument("--index", required=True, help="rewritten atomically")
  add.add_argument("--landmarks-csv", help="names/coordinates of the new landmarks")
  _add_source_args(add)
  add.add_argument("overrides", nargs="*", metavar="key=value", help="CleaningConfig fields")
  add.set_defaults(run=_add_landmarks)

  remove = commands.add_parser("remove-landmarks", help="remove landmarks from a built index")
  remove.add_argument("--index", required=True)
  remove.add_argument("landmark_ids", nargs="+")
  remove.set_defaults(run=_remove_landmarks)

  cal = commands.add_parser("calibrate", help="choose η for a target specificity, store it")
  cal.add_argument("--checkpoint", required=True)
  cal.add_argument("--index", required=True)
  cal.add_argument("--target-specificity", type=float, default=0.99)
  _add_source_args(cal)
  cal.set_defaults(run=_calibrate)

  rec = commands.add_parser("recognize", help="recognise photos")
  rec.add_argument("--checkpoint", required=True)
  rec.add_argument("--index", required=True)
  rec.add_argument("--top-k", type=int, default=5)
  rec.add_argument("--json", action="store_true", help="JSON lines instead of a table")
  rec.add_argument("--latitude", type=float, help="the photos' location (else their EXIF GPS)")
  rec.add_argument("--longitude", type=float)
  rec.add_argument("--radius-km", type=float, default=50.0)
  rec.add_argument("--no-exif", action="store_true", help="ignore EXIF GPS positions")
  rec.add_argument("paths", nargs="+")
  rec.set_defaults(run=_recognize)

  ev = commands.add_parser(
      "evaluate", help="sensitivity/specificity, rare/frequent, categories, GAP, plots")
  ev.add_argument("--checkpoint", required=True)
  ev.add_argument("--index", required=True)
  ev.add_argument("--out", required=True, help="report.md, report.json and PNG plots go here")
  ev.add_argument("--eta", type=float, default=None, help="default: the index's calibrated η")
  ev.add_argument("--landmark-share", type=float, default=0.02,
                  help="emulate a user collection with this share of landmark photos "
                       "(the paper: 1–3 %%); 0 keeps the test set as it is")
  ev.add_argument("--rare-threshold", type=int, default=10,
                  help="landmarks with fewer training images are 'rare'")
  ev.add_argument("--seed", type=int, default=0)
  ev.add_argument("--geo", action="store_true",
                  help="also evaluate with geo-information (the photos' EXIF GPS positions)")
  ev.add_argument("--locations-csv", help="id,latitude,longitude of the test photos (implies "
                                          "--geo; photos not listed fall back to EXIF)")
  _add_source_args(ev)
  ev.set_defaults(run=_evaluate)

  evr = commands.add_parser("evaluate-revisited", help="Revisited Oxford/Paris mAP")
  evr.add_argument("--checkpoint", required=True)
  evr.add_argument("--root", required=True, help="the dataset folder (with jpg/)")
  evr.add_argument("--gnd", required=True, help="gnd_roxford5k.pkl / gnd_rparis6k.pkl / .mat")
  evr.add_argument("--distractors", help="a folder of distractor images (R1M-style)")
  evr.add_argument("--batch-size", type=int, default=16)
  evr.add_argument("--out", help="also write the JSON result here")
  evr.set_defaults(run=_evaluate_revisited)

  srv = commands.add_parser("serve", help="the HTTP recognition service (loopback by default)")
  srv.add_argument("--checkpoint", required=True)
  srv.add_argument("--index", required=True)
  srv.add_argument("--host", default="127.0.0.1")
  srv.add_argument("--port", type=int, default=8000)
  srv.add_argument("--landmarks-csv",
                   help="landmark_id,name,… : names (default: the index's landmarks.csv)")
  srv.add_argument("--radius-km", type=float, default=50.0,
                   help="with a photo location, only landmarks this close stay candidates")
  srv.add_argument("--max-batch", type=int, default=16)
  srv.add_argument("--max-wait-ms", type=float, default=5.0)
  srv.add_argument("--max-bytes", type=int, default=20 * 2**20)
  srv.add_argument("--max-pixels", type=int, default=50_000_000)
  srv.set_defaults(run=_serve)

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

  index_bench = suites.add_parser(
      "index", help="ScaNN vs exact search at recall@1 ≥ 0.99; embed+search latency")
  index_bench.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
  index_bench.add_argument("--queries", type=int, default=1000)
  index_bench.add_argument("--backbone", default="wide_resnet50_2")
  index_bench.add_argument("--skip-latency", action="store_true")
  index_bench.add_argument("--json", help="also write the rows to this JSON file")
  index_bench.set_defaults(run=_benchmark_index)

  compare = suites.add_parser(
      "compare", help="centroid recognizer vs the DELF-style baseline: per-query time by "
                      "part, index memory, sensitivity/specificity (table + PNG)")
  compare.add_argument("--checkpoint", help="training workdir (default: the demo's; trained "
                                            "first if missing)")
  compare.add_argument("--index", help="its centroid index")
  compare.add_argument("--root", help="GLDv2-layout folder holding the validation and test "
                                      "CSVs (default with the demo: the embedded dataset)")
  compare.add_argument("--val-csv", default="val.csv", help="calibrates both thresholds")
  compare.add_argument("--test-csv", default="test.csv")
  compare.add_argument("--non-landmark-csv", default=None)
  compare.add_argument("--attention", default="trained", choices=["trained", "feature_norm"])
  compare.add_argument("--preset", choices=["demo", "delf"],
                       help="DELF settings: 'delf' (DELF's own: 512 px, 7 scales, 1000 "
                            "features) or 'demo' (sized for the embedded 128-px photos); "
                            "default: demo on the demo, else delf")
  compare.add_argument("--target-specificity", type=float, default=None,
                       help="default: the index's calibration target")
  compare.add_argument("--max-queries", type=int, default=None)
  compare.add_argument("--full-size-backbone", metavar="NAME",
                       help="also time one photo's forward passes with this backbone at the "
                            "paper's sizes (224² crop vs DELF's 512-px 7-scale pyramid)")
  compare.add_argument("--demo-workdir", default="workdir/demo")
  compare.add_argument("--out", default="workdir/compare",
                       help="compare.md, compare.json and compare.png go here")
  compare.add_argument("overrides", nargs="*", metavar="key=value",
                       help="DelfConfig fields, e.g. max_features=500 'scales=(0.5,1.0)'")
  compare.set_defaults(run=_benchmark_compare)

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
