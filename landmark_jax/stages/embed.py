"""`landmark-jax embed`: a trained model + an image source → L2-normalised embeddings on disk
(`embed_to_folder`; `PhotoEmbedder.embed_source` embeds into memory instead).

Output: ``shard-NNNNN/`` folders, each holding ``embeddings.npy`` (float32, (m, D)),
``ids.npy`` (unicode), ``labels.npy`` (dense labels, int32), and ``skipped.json`` (images
that could not be read), plus ``label_map.json`` and ``embeddings.json`` (model, counts).
Shard i covers source records [i·S, (i+1)·S). A shard is written atomically
(`landmark_jax.folders.atomic_folder`), so a killed job leaves only whole shards, and a rerun
skips them. With several processes (hosts), process p embeds shards p, p + P, … on its own
devices, into the same folder (a shared filesystem); process 0 writes the manifest once
every shard is there.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib

import jax
import numpy as np
from tqdm import tqdm

from landmark_jax import distributed
from landmark_jax.data import ImageSource, PipelineConfig, eval_dataset
from landmark_jax.data.labels import LabelMap
from landmark_jax.embedding import EmbeddedPhotos, Embedder, eval_batch_size
from landmark_jax.errors import MissingFileError
from landmark_jax.folders import atomic_folder
from landmark_jax.train.checkpoints import CONFIG_FILE, TrainedModel, load_run_config

logger = logging.getLogger(__name__)


MANIFEST_FILE = "embeddings.json"  # written last, by process 0


def is_done(out_dir: str | os.PathLike) -> bool:
  """Whether `out_dir` holds every shard of a finished `embed_to_folder`."""
  return (pathlib.Path(out_dir) / MANIFEST_FILE).is_file()


def _shard_dir(out: pathlib.Path, shard: int) -> pathlib.Path:
  return out / f"shard-{shard:05d}"


def embed_to_folder(
  trained: TrainedModel,
  source: ImageSource,
  out_dir: str | os.PathLike,
  *,
  batch_size: int = 64,
  shard_size: int = 8192,
  num_workers: int = 0,
  progress: bool = True,
) -> EmbeddedPhotos:
  """Embeds every record of `source` (resumable; see the module docstring)."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  mesh = distributed.local_mesh()
  pipeline = PipelineConfig(
    batch_size=eval_batch_size(batch_size, mesh),
    num_workers=num_workers,
    image=trained.config.pipeline.image,
  )
  embedder = Embedder(trained.model, trained.variables, mesh)
  num_shards = -(-len(source) // shard_size)
  mine = range(jax.process_index(), num_shards, jax.process_count())
  bar = tqdm(
    total=sum(min(shard_size, len(source) - s * shard_size) for s in mine),
    desc="embed",
    unit="img",
    disable=not progress or not distributed.is_main_process(),
    dynamic_ncols=True,
  )
  for shard in mine:
    start, stop = shard * shard_size, min((shard + 1) * shard_size, len(source))
    if _shard_dir(out, shard).is_dir():
      bar.update(stop - start)
      continue
    ids, labels, vectors, skipped = [], [], [], []
    for batch in embedder.iterate(eval_dataset(source.subset(range(start, stop)), pipeline)):
      ok = batch["mask"]
      ids.append(batch["id"][ok])
      labels.append(batch["label"][ok])
      vectors.append(batch["embedding"][ok])
      skipped += batch["id"][~ok].tolist()
      bar.update(len(ok))
    with atomic_folder(_shard_dir(out, shard)) as staging:
      np.save(staging / "embeddings.npy", np.concatenate(vectors).astype(np.float32))
      np.save(staging / "ids.npy", np.concatenate(ids).astype(str))
      np.save(staging / "labels.npy", np.concatenate(labels).astype(np.int32))
      (staging / "skipped.json").write_text(json.dumps(skipped))
  bar.close()
  distributed.barrier("embed: every shard written")
  if distributed.is_main_process():
    source.label_map.save(out / "label_map.json")
    (out / MANIFEST_FILE).write_text(
      json.dumps(
        {
          "checkpoint": trained.checkpoint_id,
          "records": len(source),
          "shards": num_shards,
          "shard_size": shard_size,
          "embedding_dim": trained.model.embedding_dim,
        },
        indent=2,
      )
    )
  distributed.barrier("embed: manifest written")
  result = load_embeddings(out)
  if result.skipped:
    logger.warning(
      "%d unreadable images were skipped (first: %s)",
      len(result.skipped),
      ", ".join(result.skipped[:5]),
    )
  return result


def load_embeddings(directory: str | os.PathLike) -> EmbeddedPhotos:
  directory = pathlib.Path(directory)
  shards = sorted(p for p in directory.glob("shard-*") if p.is_dir())
  if not shards:
    raise MissingFileError(f"no embedding shards in {directory}: run `landmark-jax embed` first")

  def load(name):
    return np.concatenate([np.load(s / name, allow_pickle=False) for s in shards])

  skipped = [i for s in shards for i in json.loads((s / "skipped.json").read_text())]
  manifest = directory / MANIFEST_FILE
  checkpoint = json.loads(manifest.read_text()).get("checkpoint") if manifest.is_file() else None
  return EmbeddedPhotos(
    ids=load("ids.npy"),
    labels=load("labels.npy"),
    embeddings=load("embeddings.npy"),
    label_map=LabelMap.load(directory / "label_map.json"),
    skipped=skipped,
    checkpoint=checkpoint,
  )


def run_config_of(directory: str | os.PathLike):
  """The training config of the model whose embeddings `directory` holds (its manifest's
  checkpoint, ``<workdir>@<step>``), or None when that workdir is not there to read."""
  manifest = pathlib.Path(directory) / MANIFEST_FILE
  if not manifest.is_file():
    return None
  checkpoint = json.loads(manifest.read_text()).get("checkpoint") or ""
  workdir = pathlib.Path(checkpoint.rpartition("@")[0])
  if not checkpoint or not (workdir / CONFIG_FILE).is_file():
    return None
  return load_run_config(workdir)
