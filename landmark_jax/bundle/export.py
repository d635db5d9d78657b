"""`export_bundle`: a trained model and its index → one folder holding what inference needs
(`manifest` names the files), written atomically; with `jax_export`, also the embedding
function serialised by `jax.export`, runnable with JAX alone."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
import shutil
import time
from typing import Any

import jax
import jax.numpy as jnp

from landmark_jax.bundle import manifest as layout
from landmark_jax.bundle.manifest import BundleError
from landmark_jax.bundle.weights import save_variables
from landmark_jax.config import to_dict
from landmark_jax.folders import atomic_folder, exclusive_writer, lock_path
from landmark_jax.index import integrity
from landmark_jax.index.centroid_index import CentroidIndex
from landmark_jax.index.provenance import check_same_model
from landmark_jax.train.checkpoints import TrainedModel, load_trained

# XLA's platforms the embedding program is lowered for: it then runs on a CPU or an NVIDIA
# GPU host (`jax.export` refuses the others, naming the platform).
PLATFORMS = ("cpu", "cuda")


@dataclasses.dataclass(frozen=True)
class ExportedBundle:
  path: pathlib.Path
  manifest: dict[str, Any]
  num_centroids: int

  @property
  def bytes(self) -> int:
    return sum(record["bytes"] for record in self.manifest["files"].values())


def _check_out(out: pathlib.Path, force: bool, sources: tuple[pathlib.Path, ...]) -> None:
  for source in sources:
    if out == source or out in source.parents:
      raise BundleError(f"--out {out} holds {source}: write the bundle elsewhere")
  if out.is_file():
    raise BundleError(f"--out {out} is a file; a bundle is a folder")
  if out.is_dir() and any(out.iterdir()) and not force:
    raise BundleError(
      f"--out {out} exists and is not empty: choose another folder, or pass --force to replace it"
    )
  # --force replaces a bundle, never a folder of something else: it is deleted whole.
  if force and out.is_dir() and any(out.iterdir()) and not (out / layout.MANIFEST).is_file():
    raise BundleError(
      f"--out {out} is not a bundle (no {layout.MANIFEST}): --force replaces only a bundle; "
      "choose another folder"
    )


def embedding_program(trained: TrainedModel) -> bytes:
  """`LandmarkNet.embed` with the weights baked in, serialised by `jax.export`: uint8
  (b, S, S, 3) eval crops → float32 (b, D) unit embeddings, for any batch size b."""
  try:
    import flatbuffers  # noqa: F401  (jax.export's serialisation needs it, and says so late)
  except ImportError:
    raise BundleError(
      "--jax-export needs the flatbuffers package: pip install flatbuffers"
    ) from None
  size = trained.config.pipeline.image.crop_size
  embed = jax.jit(functools.partial(trained.model.apply, trained.variables, method="embed"))
  images = jax.ShapeDtypeStruct(jax.export.symbolic_shape(f"b, {size}, {size}, 3"), jnp.uint8)
  return bytes(jax.export.export(embed, platforms=PLATFORMS)(images).serialize())


def _copy_index(index: CentroidIndex, source: pathlib.Path, target: pathlib.Path) -> None:
  """The index's files, as saved (those its manifest lists, and the manifest); an index
  saved before checksums (format 1) is saved anew, with them."""
  manifest = json.loads((source / integrity.MANIFEST).read_text())
  if "files" not in manifest:
    index.save(target)
    lock_path(target).unlink(missing_ok=True)
    return
  for name in [*manifest["files"], integrity.MANIFEST]:
    (target / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / name, target / name)


def export_bundle(
  checkpoint: str | os.PathLike,
  index: str | os.PathLike,
  out: str | os.PathLike,
  *,
  force: bool = False,
  jax_export: bool = False,
  allow_other_model: bool = False,
) -> ExportedBundle:
  """Writes the bundle of the training workdir `checkpoint` (its latest step) and the index
  folder `index` to `out`, atomically. An existing non-empty `out` is refused unless
  `force`; an index built from another model's embeddings unless `allow_other_model`."""
  checkpoint, index = pathlib.Path(checkpoint).absolute(), pathlib.Path(index).absolute()
  out = pathlib.Path(out).absolute()
  _check_out(out, force, (checkpoint, index))
  trained = load_trained(checkpoint)
  program = embedding_program(trained) if jax_export else None
  # The index's lock: an edit of it cannot land between the check and the copy.
  with exclusive_writer(index), atomic_folder(out, replace=True) as staging:
    loaded = CentroidIndex.load(index, expected_dim=trained.model.embedding_dim)
    built_from = loaded.metadata.get("checkpoint")
    check_same_model(
      built_from, trained.checkpoint_id, allow_other_model=allow_other_model, index=index
    )
    save_variables(trained.variables, staging / layout.WEIGHTS)
    (staging / layout.CONFIG).write_text(json.dumps(to_dict(trained.config), indent=2))
    trained.label_map.save(staging / layout.LABEL_MAP)
    _copy_index(loaded, index, staging / layout.INDEX_DIR)
    fields = {
      # The id the index was built from: the bundle's model answers to it (`load_bundle`).
      "checkpoint": built_from or trained.checkpoint_id,
      "exported_from": {"checkpoint": trained.checkpoint_id, "index": str(index)},
      "step": trained.step,
      "num_classes": trained.model.num_classes,
      "embedding_dim": trained.model.embedding_dim,
      "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if program is not None:
      (staging / layout.JAX_EXPORT).write_bytes(program)
      size, dim = trained.config.pipeline.image.crop_size, trained.model.embedding_dim
      fields["jax_export"] = {
        "file": layout.JAX_EXPORT,
        "platforms": list(PLATFORMS),
        "input": f"uint8[b, {size}, {size}, 3]",
        "output": f"float32[b, {dim}], L2-normalised",
      }
    manifest = layout.write_manifest(staging, fields)
  return ExportedBundle(out, manifest, len(loaded))
