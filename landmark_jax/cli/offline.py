"""The offline steps: ``embed``, ``clean``, ``build-index``, ``local-features``,
``add-landmarks``, ``remove-landmarks``."""

from __future__ import annotations

from landmark_jax.cli.common import (
  add_allow_other_model_arg,
  add_config_arg,
  add_ignore_unmatched_arg,
  add_process_group_args,
  add_source_args,
  config_section,
  join_processes,
  non_negative_int,
  photos,
  positive_int,
  probability,
  setup_logging,
  share,
  similarity,
  source_from_args,
)
from landmark_jax.cli.export import add_model_and_index_args
from landmark_jax.errors import DataError
from landmark_jax.text import printable

# stages.new_landmarks.HOLD_BACK, written out so that parsing the command line imports no
# library module (`--help` stays fast).
HOLD_BACK = 0.25


def _embed(args) -> int:
  from landmark_jax import distributed
  from landmark_jax.stages.embed import embed_to_folder
  from landmark_jax.train.checkpoints import load_trained

  setup_logging()
  join_processes(args)
  trained = load_trained(args.checkpoint)
  result = embed_to_folder(
    trained,
    photos(args, trained, "train"),
    args.out,
    batch_size=args.batch_size,
    shard_size=args.shard_size,
    num_workers=args.num_workers,
  )
  distributed.finish()
  if distributed.is_main_process():
    print(
      f"{len(result.ids)} embeddings ({result.embeddings.shape[1]}-d) in {args.out}; "
      f"{len(result.skipped)} unreadable images skipped"
    )
  return 0


def _local_features(args) -> int:
  import dataclasses

  from landmark_jax.bundle import editing, model_and_index
  from landmark_jax.config import apply_overrides
  from landmark_jax.stages.local_features import add_local_features

  setup_logging()
  trained, index_dir = model_and_index(args.checkpoint, args.index, args.bundle)
  config = apply_overrides(
    dataclasses.replace(trained.config.delf, attention=args.attention), args.overrides
  )
  with editing(args.bundle):
    store = add_local_features(
      index_dir,
      trained,
      photos(args, trained, "train"),
      config,
      per_landmark=args.per_landmark,
      allow_other_model=args.allow_other_model,
      seed=args.seed,
    )
  print(
    f"local features of {len(store)} reference photos ({store.num_features} features, "
    f"{store.nbytes / 1024:.0f} KiB, extractor {store.extractor_nbytes / 1024:.0f} KiB) "
    f"stored in {index_dir}; next: `landmark-jax calibrate` chooses where verification "
    "decides (--verify-budget)"
  )
  return 0


def _clean(args) -> int:
  from landmark_jax.stages.clean import clean_folder, report_markdown
  from landmark_jax.stages.embed import run_config_of

  # Without --config, the cleaning rules the model was trained with (its run's config),
  # not `default`'s: a tiny model's embeddings are cleaned at its own distance threshold.
  fallback = "default" if args.config else run_config_of(args.embeddings) or "default"
  report = clean_folder(
    args.embeddings,
    args.out,
    config_section(args.config, fallback, "cleaning", args.overrides),
    args.references_csv,
  )
  print(report_markdown(report))
  print(f"cleaned dataset, report and centroids written to {args.out}")
  return 0


def _build_index(args) -> int:
  from landmark_jax.stages.build_index import build_index_folder

  setup_logging()
  built = build_index_folder(
    args.clean,
    args.out,
    config_section(args.config, "default", "index", args.overrides),
    checkpoint_id=args.checkpoint_id,
    landmarks_csv=args.landmarks_csv,
    target_recall=args.target_recall,
    embeddings_dir=args.embeddings,
    eta=args.eta,
    tuning_queries_count=args.tuning_queries,
    ignore_unmatched=args.ignore_unmatched,
  )
  if built.tuning is not None:
    _report_tuning(built, args)
  index = built.index
  print(f"index of {len(index)} centroids ({index.backend}) written to {args.out}")
  return 0


def _report_tuning(built, args) -> None:
  """The search settings --target-recall chose, and the recall they reach."""
  from landmark_jax.index.tuning import describe

  index, tuning, source = built.index, built.tuning, built.query_source
  chosen = tuning.chosen
  if chosen.setting is None:
    searcher = "exact search" if index.backend == "exact" else "ScaNN's brute force"
    print(f"recall@1 measured on {source}: {searcher} has no settings to tune")
  else:
    print(
      f"search tuned for recall@1 ≥ {args.target_recall} on {source}: "
      f"{describe(chosen.setting, index.scann_info['num_leaves'])} "
      f"({len(tuning.measured)} settings measured against exact search)"
    )
  print(f"  recall@1 {chosen.recall:.4f} on all {built.queries} queries")
  if args.eta is None:
    print(
      "  no η: the index is not calibrated yet, so the target applied to all queries; "
      "--eta ETA measures it on those whose best score clears ETA (those that matter)"
    )
  elif chosen.recall_above_eta is None:
    print(f"  no query's best score clears η {args.eta}: the target applied to all queries")
  else:
    print(
      f"  recall@1 {chosen.recall_above_eta:.4f} on the {tuning.queries_above_eta} whose "
      f"best score clears η {args.eta} (the target's)"
    )


def _landmark_list(ids, index) -> str:
  """``0 (astronaut), sacre_coeur``: ids with their names (ids may be the strings the
  manifest's edits store)."""
  from landmark_jax.index.landmarks import describe

  by_text = {str(k): v for k, v in index.landmarks.items()}
  return printable(", ".join(describe(str(i), by_text) for i in ids))  # names from a CSV


def _report_addition(addition, args, before) -> None:
  """What the add did, per landmark, and what happened to each landmarks-CSV row."""
  edited, result = addition.index, addition.cleaning
  edit = edited.metadata["edits"][-1]
  print(
    f"added {_count(len(result.outcomes), 'landmark')}, "
    f"{_count(edit['centroids'], 'centroid')} from {_count(edit['images'], 'photo')}"
    + (f" ({edit['held_back']} more held back for calibration)" if edit["held_back"] else "")
    + ":"
  )
  for outcome in result.outcomes:
    line = (
      f"  {_landmark_list([outcome.landmark], edited)}: "
      f"{_count(outcome.photos, 'photo')}, {_count(outcome.centroids, 'centroid')}"
    )
    print(line + (f"; {outcome.explain(result.config)}" if outcome.reasons else ""))
  if args.landmarks_csv:
    _report_rows(edit["metadata"], args.landmarks_csv, before, edited)
  print(f"index now {_count(len(edited), 'centroid')} ({args.bundle or args.index})")


def _model_flags(args, checkpoint: str = "MODEL") -> str:
  """How a later command names the same model and index: ``--bundle B``, or
  ``--checkpoint C --index I``."""
  if args.bundle:
    return f"--bundle {args.bundle}"
  return f"--checkpoint {getattr(args, 'checkpoint', None) or checkpoint} --index {args.index}"


def _count(n: int, noun: str) -> str:
  return f"{n} {noun}" + ("" if n == 1 else "s")


def _report_rows(merge: dict, csv_name: str, before, after) -> None:
  """What happened to each row of a landmarks CSV (`MetadataMerge.summary`); its ids and
  names `printable`, since a CSV can hold escape sequences."""
  if merge["by_name"]:
    print(
      f"{csv_name}: rows matched by name: "
      + printable(
        ", ".join(f"{new} (row landmark_id {row})" for new, row in merge["by_name"].items())
      )
    )
  if merge["not_updated"]:
    print(
      f"{csv_name}: rows describing landmarks already in the index were not applied: "
      f"{_landmark_list(merge['not_updated'], before)} (--update-metadata applies them)"
    )
  by_text = {str(k): v for k, v in after.landmarks.items()}
  for landmark in merge["updated"]:
    print(
      f"{csv_name}: landmark {_landmark_list([landmark], before)} → "
      f"{printable(by_text.get(landmark).name or '(no name)')}"
    )
  if merge["without_row"]:
    print(
      f"{csv_name}: no row (by id or name) for {printable(', '.join(merge['without_row']))}: "
      "they have no name or coordinates"
    )
    if merge["updated"] or merge["not_updated"]:
      print(
        "  if the rows of existing landmarks were meant for the new ones, name the rows "
        "as the folders (or the folders by the rows' landmark_id), then "
        "`landmark-jax update-landmarks` fixes names and coordinates"
      )


def _add_landmarks(args) -> int:
  from landmark_jax.bundle import check_model_args, editing, model_and_index
  from landmark_jax.index.landmarks import load_landmarks_csv
  from landmark_jax.stages.new_landmarks import add_to_index, check_hold_back

  setup_logging()
  check_model_args(args.checkpoint, args.index, args.bundle)
  check_hold_back(args.hold_back, args.recalibrate)  # before the photos are looked for
  source = source_from_args(args, None)
  if source is None:
    raise DataError("add-landmarks needs the new landmarks' photos: --folder or --root/--csv")
  landmarks = load_landmarks_csv(args.landmarks_csv) if args.landmarks_csv else None
  trained, index_dir = model_and_index(args.checkpoint, args.index, args.bundle)
  with editing(args.bundle):
    addition = add_to_index(
      index_dir,
      trained,
      source,
      config_section(args.config, trained.config, "cleaning", args.overrides),
      landmarks,
      update_metadata=args.update_metadata,
      recalibrate=args.recalibrate,
      hold_back=args.hold_back,
      allow_other_model=args.allow_other_model,
      ignore_unmatched=args.ignore_unmatched,
      csv_name=args.landmarks_csv or "the landmarks CSV",
    )
  _report_addition(addition, args, addition.before)
  old_eta = addition.before.metadata.get("eta")
  if addition.calibration is not None:
    result = addition.calibration
    held = addition.index.metadata["edits"][-1]["held_back"]
    print(
      f"recalibrated with {_count(held, 'held-back photo')} of the new landmarks: η "
      + (f"{_thresholds(addition.before.metadata)} → " if old_eta is not None else "")
      + f"{_thresholds(result)} (specificity {result['specificity']:.1%}, sensitivity "
      f"{result['sensitivity']:.1%} on {result['landmark_images']} landmark and "
      f"{result['non_landmark_images']} non-landmark photos)"
    )
    if not held:
      print(
        "  the new landmarks were not measured: no photo was held back (--hold-back; a "
        "landmark gives none with fewer than 1/SHARE photos)"
      )
  elif old_eta is not None:
    print(
      f"η = {_thresholds(addition.before.metadata)} was calibrated without these landmarks: "
      f"run `landmark-jax calibrate {_model_flags(args)}` (it reuses the "
      "stored validation photos), or add with --recalibrate"
    )
  return 0


def _thresholds(calibrated: dict) -> str:
  """``0.9305`` or ``0.9305 with ρ = 0.8102``: η as recognition applies it, from a
  manifest or a calibration's figures (both keep it as ``eta``)."""
  rho = calibrated.get("reference_threshold")
  return f"{calibrated['eta']:.4f}" + (f" with ρ = {rho:.4f}" if rho is not None else "")


def _remove_landmarks(args) -> int:
  from landmark_jax.bundle import editing, model_and_index
  from landmark_jax.index.editing import edit_index, remove_landmarks

  _, index_dir = model_and_index(None, args.index, args.bundle, model=False)
  with editing(args.bundle):
    index, edited = edit_index(index_dir, lambda index: remove_landmarks(index, args.landmarks))
  edit = edited.metadata["edits"][-1]
  print(
    f"removed {_landmark_list(edit['landmarks'], index)}: "
    f"{_count(edit['centroids'], 'centroid')}; index now "
    f"{_count(len(edited), 'centroid')} ({args.bundle or args.index})"
  )
  if "eta" in edited.metadata:
    print(
      f"η was calibrated with these landmarks: `landmark-jax calibrate {_model_flags(args)}` "
      "chooses it again on the stored validation photos"
    )
  return 0


def _update_landmarks(args) -> int:
  from landmark_jax.bundle import editing, model_and_index
  from landmark_jax.index.editing import edit_index, update_landmarks
  from landmark_jax.index.landmarks import fields_given, load_landmarks_csv

  setup_logging()  # the warning of --ignore-unmatched
  _, index_dir = model_and_index(None, args.index, args.bundle, model=False)
  table = load_landmarks_csv(args.landmarks_csv)
  fields = fields_given(args.landmarks_csv)  # a column the CSV lacks is left as it is
  with editing(args.bundle):
    index, edited = edit_index(
      index_dir,
      lambda index: update_landmarks(
        index,
        table,
        ignore_unmatched=args.ignore_unmatched,
        csv_name=args.landmarks_csv,
        fields=fields,
      ),
    )
  if edited is index:
    print(f"{args.landmarks_csv}: nothing to change; the index already holds what it says")
    return 0
  _report_rows(edited.metadata["edits"][-1]["metadata"], args.landmarks_csv, index, edited)
  return 0


def register(commands, debug) -> None:
  embed = commands.add_parser(
    "embed", parents=[debug], help="embed a data source with a trained model"
  )
  embed.add_argument("--checkpoint", required=True, help="a training workdir")
  embed.add_argument("--out", required=True, help="output folder of .npy shards (resumable)")
  add_source_args(embed, "the checkpoint's training data")
  embed.add_argument(
    "--batch-size", type=positive_int, default=64, help="photos per device call (default: 64)"
  )
  embed.add_argument(
    "--shard-size",
    type=positive_int,
    default=8192,
    help="embeddings per .npy shard; a resumed run redoes at most one shard (default: 8192)",
  )
  embed.add_argument(
    "--num-workers",
    type=non_negative_int,
    default=0,
    help="grain worker processes decoding photos (default: 0, in this process)",
  )
  add_process_group_args(embed)
  embed.set_defaults(run=_embed)

  clean = commands.add_parser(
    "clean", parents=[debug], help="per-landmark clustering: cleaned dataset, report and centroids"
  )
  clean.add_argument("--embeddings", required=True, help="the output folder of `embed`")
  clean.add_argument(
    "--out",
    required=True,
    help="output folder: train_clean.csv, report.md/json, dropped.csv, centroids",
  )
  clean.add_argument(
    "--references-csv",
    metavar="CSV",
    help="reference photos (an `id` column of embedded training photos): each "
    "valid cluster must lie within cleaning.reference_similarity of one "
    "of its landmark's, and they are the landmark's class references in "
    "the index. Default: each valid cluster's medoid is its reference",
  )
  add_config_arg(
    clean,
    "the embeddings' model's own training config, else default (the paper's); its "
    "`cleaning` section is used",
  )
  clean.add_argument(
    "overrides",
    nargs="*",
    metavar="key=value",
    help="CleaningConfig fields, e.g. distance_threshold=0.4 min_cluster_size=3",
  )
  clean.set_defaults(run=_clean)

  build = commands.add_parser(
    "build-index", parents=[debug], help="ScaNN index over the cleaned centroids"
  )
  build.add_argument("--clean", required=True, help="the output folder of `clean`")
  build.add_argument("--out", required=True, help="the index folder (written atomically)")
  build.add_argument(
    "--checkpoint-id", help="recorded in the manifest (default: the model the embeddings came from)"
  )
  build.add_argument(
    "--landmarks-csv",
    help="landmark_id,name,latitude,longitude[,category]: kept with the index "
    "for names and geo filtering; a row for no landmark of the cleaning, a landmark "
    "with two rows or a misnamed column (lat, lon) is refused",
  )
  add_ignore_unmatched_arg(build)
  build.add_argument(
    "--target-recall",
    type=probability,
    metavar="R",
    help="choose the search settings (leaves probed, candidates re-scored) "
    "as the cheapest whose recall@1 against exact search reaches R on "
    "sampled queries; kept in the manifest, a loaded index searches "
    "with them. A warning says when no setting reaches R",
  )
  build.add_argument(
    "--embeddings",
    metavar="DIR",
    help="with --target-recall: the photos to sample queries from (an "
    "`embed` folder; default: the one the cleaning was made from, else "
    "centroids perturbed to cosine 0.7)",
  )
  build.add_argument(
    "--eta",
    type=similarity,
    metavar="ETA",
    help="with --target-recall: the recognition threshold; the target then "
    "applies to the queries whose best score clears it (below it, the "
    "answer is 'no landmark' whatever is found)",
  )
  build.add_argument(
    "--tuning-queries",
    type=positive_int,
    metavar="N",
    help="with --target-recall: queries sampled (default: 2000)",
  )
  add_config_arg(build, "default; its `index` section is used")
  build.add_argument(
    "overrides",
    nargs="*",
    metavar="key=value",
    help="IndexConfig fields, e.g. backend=exact num_leaves=2000",
  )
  build.set_defaults(run=_build_index)

  local = commands.add_parser(
    "local-features",
    parents=[debug],
    help="store reference photos' local features in an index, to verify uncertain answers",
    description="Learns the DELF-style local-feature extractor (attention head and PCA) "
    "on the training photos, on the model's own backbone, and stores it in the index with "
    "the local features of up to --per-landmark reference photos per landmark (the "
    "cleaning's medoids first). Then `landmark-jax calibrate` chooses the band of scores "
    "around η where RANSAC inliers decide (docs/verified-answers.md).",
  )
  add_model_and_index_args(local, index_help="the centroid index to store them in")
  add_source_args(local, "the training split of the checkpoint's data")
  local.add_argument(
    "--per-landmark",
    type=positive_int,
    default=4,
    metavar="R",
    help="reference photos stored per landmark (default: 4)",
  )
  local.add_argument(
    "--attention",
    choices=("trained", "feature_norm"),
    default="trained",
    help="which locations become keypoints: DELF's trained attention (default) or the "
    "feature norm (nothing to train)",
  )
  local.add_argument("--seed", type=non_negative_int, default=0, help="attention training seed")
  add_allow_other_model_arg(local)
  local.add_argument(
    "overrides",
    nargs="*",
    metavar="key=value",
    help="DelfConfig fields over the checkpoint config's `delf` section, e.g. "
    "max_features=500 image_size=512",
  )
  local.set_defaults(run=_local_features)

  add = commands.add_parser(
    "add-landmarks",
    parents=[debug],
    help="add landmarks to a built index from their photos, no retraining",
    description="Embeds the new landmarks' photos with the index's model, cleans and "
    "clusters them into per-angle centroids by the model's cleaning rules, and "
    "rewrites the index with them. Existing landmarks keep their metadata "
    "(--update-metadata, or `update-landmarks`, changes it). η is kept unless "
    "--recalibrate, which chooses it again on the index's stored validation "
    "photos plus held-back photos of the new landmarks (and any photos in a "
    "non_landmark/ subfolder of --folder); see docs/your-own-landmarks.md.",
  )
  add_model_and_index_args(add, index_help="the index to edit (rewritten atomically)")
  add.add_argument(
    "--landmarks-csv",
    help="landmark_id,name,latitude,longitude[,category]: a row describes a new "
    "landmark by its id or by its name (a folder's name); rows of "
    "landmarks already in the index apply only with --update-metadata; a row "
    "that describes no landmark is refused",
  )
  add_ignore_unmatched_arg(add)
  add_allow_other_model_arg(add)
  add.add_argument(
    "--update-metadata",
    action="store_true",
    help="also replace existing landmarks' names and coordinates with their "
    "rows in --landmarks-csv",
  )
  add.add_argument(
    "--recalibrate",
    action="store_true",
    help="choose η again for the index's calibration target, on the validation "
    "photos it keeps plus held-back photos of the new landmarks",
  )
  add.add_argument(
    "--hold-back",
    type=share,
    default=None,
    metavar="SHARE",
    help=f"with --recalibrate: the share of each new landmark's photos kept out "
    f"of its centroids to measure it (default: {HOLD_BACK}; a landmark with "
    "fewer than 1/SHARE photos gives none)",
  )
  add_source_args(add, required=True)
  add_config_arg(add, "the checkpoint's own; its `cleaning` section is used")
  add.add_argument(
    "overrides",
    nargs="*",
    metavar="key=value",
    help="CleaningConfig fields, e.g. min_cluster_size=2",
  )
  add.set_defaults(run=_add_landmarks)

  update = commands.add_parser(
    "update-landmarks",
    parents=[debug],
    help="replace landmarks' names and coordinates in a built index from a landmarks CSV",
    description="Applies the rows of a landmarks CSV to the landmarks of the index they "
    "describe (by id; a landmark added from a folder also by its id as the "
    "row's name). Centroids and η are untouched; rows matching no landmark are "
    "refused (--ignore-unmatched skips them); a change that would give two landmarks "
    "one name is refused.",
  )
  add_model_and_index_args(
    update, model=False, index_help="the index to edit (rewritten atomically)"
  )
  update.add_argument(
    "--landmarks-csv", required=True, help="landmark_id,name,latitude,longitude[,category]"
  )
  add_ignore_unmatched_arg(update)
  update.set_defaults(run=_update_landmarks)

  remove = commands.add_parser(
    "remove-landmarks", parents=[debug], help="remove landmarks from a built index"
  )
  add_model_and_index_args(
    remove, model=False, index_help="the index to edit (rewritten atomically)"
  )
  remove.add_argument(
    "landmarks",
    nargs="+",
    metavar="LANDMARK",
    help="landmarks to remove, each by its id or its name",
  )
  remove.set_defaults(run=_remove_landmarks)
