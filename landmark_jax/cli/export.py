"""``landmark-jax export``: a trained model and its index → one inference bundle folder; and
``--bundle``, which the commands that use or edit a model and its index take instead of
``--checkpoint``/``--index``."""

from __future__ import annotations

import argparse

from landmark_jax.cli.common import add_allow_other_model_arg


def add_model_and_index_args(
  parser: argparse.ArgumentParser, *, model: bool = True, index_help: str = "its centroid index"
) -> None:
  """--checkpoint (if the command needs the `model`) and --index, or --bundle in their place
  (`bundle.check_model_args` refuses neither and both, in one line)."""
  if model:
    parser.add_argument("--checkpoint", help="a training workdir (with --index; or --bundle)")
  parser.add_argument("--index", help=f"{index_help} (or --bundle)")
  parser.add_argument(
    "--bundle",
    metavar="DIR",
    help="an inference bundle (`landmark-jax export`): the model and its index in one "
    "folder, instead of " + ("--checkpoint and --index" if model else "--index"),
  )
  add_allow_unchecked_index_arg(parser)


def add_allow_unchecked_index_arg(parser: argparse.ArgumentParser) -> None:
  """--allow-unchecked-index: `main` reads a format-1 index (no checksums) for this command
  (`index.integrity.allowing_unchecked`); an edit saves it again as format 2."""
  parser.add_argument(
    "--allow-unchecked-index",
    action="store_true",
    help="read an index saved before checksums (format 1), whose files cannot be checked; "
    "an edit (e.g. update-landmarks) re-saves it with them",
  )


def _size(n: int) -> str:
  return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def _export(args) -> int:
  from landmark_jax.bundle import export_bundle

  exported = export_bundle(
    args.checkpoint,
    args.index,
    args.out,
    force=args.force,
    jax_export=args.jax_export,
    allow_other_model=args.allow_other_model,
  )
  manifest = exported.manifest
  print(
    f"bundle written to {exported.path}: {_size(exported.bytes)} in "
    f"{len(manifest['files'])} files (model {manifest['model_id']}, step {manifest['step']}; "
    f"index of {exported.num_centroids} centroids, built from {manifest['checkpoint']})"
  )
  if "jax_export" in manifest:
    export = manifest["jax_export"]
    print(
      f"  {export['file']}: {export['input']} → {export['output']}, for "
      f"{' and '.join(export['platforms'])}; jax.export.deserialize(bytes).call(images)"
    )
  print(f"  landmark-jax recognize --bundle {exported.path} PHOTO.jpg")
  print(f"  landmark-jax serve --bundle {exported.path}")
  return 0


def register(commands, debug) -> None:
  export = commands.add_parser(
    "export",
    parents=[debug],
    help="write a model and its index as one inference bundle folder",
    description="Writes one folder holding what recognition needs and nothing else: the "
    "weights (safetensors), the run's config, the label map and a copy of the index, "
    "under one checksummed manifest (bundle.json). `recognize`, `serve` and the index "
    "edit commands take it as --bundle; `Recognizer.load(BUNDLE)` loads it.",
  )
  export.add_argument("--checkpoint", required=True, help="a training workdir (its latest step)")
  export.add_argument("--index", required=True, help="its centroid index")
  export.add_argument("--out", required=True, help="the bundle folder (written atomically)")
  export.add_argument(
    "--jax-export",
    action="store_true",
    help="also write embed.jax_export: the embedding function with the weights baked in, "
    "serialised by jax.export for CPU and CUDA (uint8 crops → unit embeddings; loads "
    "with JAX alone)",
  )
  export.add_argument("--force", action="store_true", help="replace a non-empty --out")
  add_allow_unchecked_index_arg(export)
  add_allow_other_model_arg(export)
  export.set_defaults(run=_export)
