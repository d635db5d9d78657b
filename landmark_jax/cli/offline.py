"""The offline steps: ``embed``, ``clean``, ``build-index``, ``add-landmarks``,
``remove-landmarks``."""

from __future__ import annotations

from landmark_jax.cli.common import (
    add_config_arg, add_source_args, config_section, photos, positive_int, setup_logging,
    source_from_args)
from landmark_jax.errors import DataError


def _embed(args) -> int:
  from landmark_jax.stages.embed import embed_source
  from landmark_jax.train.checkpoints import load_trained
  setup_logging()
  trained = load_trained(args.checkpoint)
  result = embed_source(trained, photos(args, trained, "train"), args.out,
                        batch_size=args.batch_size, shard_size=args.shard_size,
                        num_workers=args.num_workers)
  print(f"{len(result.ids)} embeddings ({result.embeddings.shape[1]}-d) in {args.out}; "
        f"{len(result.skipped)} unreadable images skipped")
  return 0


def _clean(args) -> int:
  from landmark_jax.stages.centroids import clean_embeddings, report_markdown, write_cleaning
  from landmark_jax.stages.embed import load_embeddings
  cleaning = config_section(args.config, "default", "cleaning", args.overrides)
  embeddings = load_embeddings(args.embeddings)
  report = write_cleaning(clean_embeddings(embeddings, cleaning), embeddings.label_map, args.out,
                          embeddings.checkpoint)
  print(report_markdown(report))
  print(f"cleaned dataset, report and centroids written to {args.out}")
  return 0


def _build_index(args) -> int:
  from landmark_jax.stages.centroids import build_centroid_index
  index_config = config_section(args.config, "default", "index", args.overrides)
  index = build_centroid_index(args.clean, index_config, args.checkpoint_id, args.landmarks_csv)
  index.save(args.out)
  print(f"index of {len(index)} centroids ({index.backend}) written to {args.out}")
  return 0


def _add_landmarks(args) -> int:
  from landmark_jax.index.editing import locked_index
  from landmark_jax.index.landmarks import load_landmarks_csv
  from landmark_jax.recognize import PhotoEmbedder
  from landmark_jax.stages.new_landmarks import add_landmarks
  from landmark_jax.train.checkpoints import load_trained
  source = source_from_args(args, None)
  if source is None:
    raise DataError("add-landmarks needs the new landmarks' photos: --root/--csv or --folder")
  trained = load_trained(args.checkpoint)
  cleaning = config_section(args.config, trained.config, "cleaning", args.overrides)
  landmarks = load_landmarks_csv(args.landmarks_csv) if args.landmarks_csv else None
  # Locked from reading to writing: a concurrent add or remove waits, then sees this one.
  with locked_index(args.index, expected_dim=trained.model.embedding_dim) as index:
    edited = add_landmarks(index, PhotoEmbedder(trained).embed_source, source, cleaning,
                           landmarks)
    edited.save(args.index)
  edit = edited.metadata["edits"][-1]
  print(f"added {', '.join(edit['landmarks'])}: {edit['centroids']} centroids from "
        f"{edit['images']} photos; index now {len(edited)} centroids ({args.index})")
  if "eta" in edited.metadata:
    print("η was calibrated without these landmarks: run `landmark-jax calibrate` again on "
          "validation photos that include them")
  return 0


def _remove_landmarks(args) -> int:
  from landmark_jax.data.sources import parse_id
  from landmark_jax.index.editing import locked_index, remove_landmarks
  with locked_index(args.index) as index:
    edited = remove_landmarks(index, [parse_id(i) for i in args.landmark_ids])
    edited.save(args.index)
  print(f"removed {edited.metadata['edits'][-1]['centroids']} centroids; index now "
        f"{len(edited)} centroids ({args.index})")
  return 0


def register(commands, debug) -> None:
  embed = commands.add_parser("embed", parents=[debug],
                              help="embed a data source with a trained model")
  embed.add_argument("--checkpoint", required=True, help="a training workdir")
  embed.add_argument("--out", required=True, help="output folder of .npy shards (resumable)")
  add_source_args(embed, "the checkpoint's training data")
  embed.add_argument("--batch-size", type=positive_int, default=64)
  embed.add_argument("--shard-size", type=positive_int, default=8192)
  embed.add_argument("--num-workers", type=int, default=0)
  embed.set_defaults(run=_embed)

  clean = commands.add_parser(
      "clean", parents=[debug],
      help="per-landmark clustering: cleaned dataset, report and centroids")
  clean.add_argument("--embeddings", required=True, help="the output folder of `embed`")
  clean.add_argument("--out", required=True)
  add_config_arg(clean, "default (the paper's); its `cleaning` section is used")
  clean.add_argument("overrides", nargs="*", metavar="key=value",
                     help="CleaningConfig fields, e.g. distance_threshold=0.4 min_cluster_size=3")
  clean.set_defaults(run=_clean)

  build = commands.add_parser("build-index", parents=[debug],
                              help="ScaNN index over the cleaned centroids")
  build.add_argument("--clean", required=True, help="the output folder of `clean`")
  build.add_argument("--out", required=True, help="the index folder (written atomically)")
  build.add_argument("--checkpoint-id",
                     help="recorded in the manifest (default: the model the embeddings came from)")
  build.add_argument("--landmarks-csv",
                     help="landmark_id,name,latitude,longitude[,category]: kept with the index "
                          "for names and geo filtering")
  add_config_arg(build, "default; its `index` section is used")
  build.add_argument("overrides", nargs="*", metavar="key=value",
                     help="IndexConfig fields, e.g. backend=exact num_leaves=2000")
  build.set_defaults(run=_build_index)

  add = commands.add_parser(
      "add-landmarks", parents=[debug],
      help="add landmarks to a built index from their photos, no retraining")
  add.add_argument("--checkpoint", required=True, help="the model the index was built with")
  add.add_argument("--index", required=True, help="rewritten atomically")
  add.add_argument("--landmarks-csv", help="names/coordinates of the new landmarks")
  add_source_args(add, "none: the new landmarks' photos are required")
  add_config_arg(add, "the checkpoint's own; its `cleaning` section is used")
  add.add_argument("overrides", nargs="*", metavar="key=value", help="CleaningConfig fields")
  add.set_defaults(run=_add_landmarks)

  remove = commands.add_parser("remove-landmarks", parents=[debug],
                               help="remove landmarks from a built index")
  remove.add_argument("--index", required=True)
  remove.add_argument("landmark_ids", nargs="+")
  remove.set_defaults(run=_remove_landmarks)
