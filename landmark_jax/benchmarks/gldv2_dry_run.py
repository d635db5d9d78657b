"""`landmark-jax benchmark gldv2-dry-run`: every metadata-sized step of training on Google
Landmarks v2, at GLDv2's size, on synthetic metadata (no photos), with the time and peak
memory of each.

Steps, in order (`STEPS`; a step's prerequisites run with it):

- ``metadata``: train.csv (4,132,914 rows, 203,094 landmarks), train_clean.csv (1,580,470
  photos of 81,313 landmarks) and regions.csv, written by `gldv2_synthetic.synthesize`.
- ``source`` / ``clean_source``: `GLDv2Source` over train.csv (with regions: the label map's
  four curriculum stages) and over its clean subset, ``check_files=False``.
- ``label_map``: `LabelMap.from_ids` over train.csv's 4.1 M landmark ids, and their labels.
- ``curriculum``: `plan_stages` with the `default` config (the paper's: batch 256, 30 epochs).
- ``shuffle``: grain's global shuffle of the source, as `train_dataset` builds it, and the
  first records read through it (ids, labels and paths: nothing decoded).
- ``train_state``: `jax.eval_shape` of the train state at 203,095 classes (WRN-50-2, 512-d
  head: params, batch statistics, SGD momentum, center-loss centers), bytes per part.
- ``compile``: the compiled train step's memory analysis (XLA's buffer sizes) at the
  paper's global batch on this machine's devices.
- ``tiny_step``: one real train step on CPU, `wide_resnet_tiny` with the 512-d head at
  203,095 classes.
- ``embeddings``: 1,580,470 × 512 float32 synthetic embeddings (views of each landmark,
  outliers, near-duplicates) written to ``embeddings.npy`` chunk by chunk.
- ``cleaning``: `clean_dataset` over them, memory-mapped, with the `default` config's
  cleaning settings, in `workers` processes; a `clean_fraction` of the landmarks (drawn at
  random) gives the time, scaled to all of them.
"""

from __future__ import annotations

import dataclasses
import pathlib
import platform
import time
from typing import Any, Callable, Sequence

import numpy as np

from landmark_jax.benchmarks.gldv2_synthetic import SyntheticSizes, synthesize
from landmark_jax.benchmarks.memory import MB, measure
from landmark_jax.errors import UsageError

STEPS = (
  "metadata",
  "source",
  "clean_source",
  "label_map",
  "curriculum",
  "shuffle",
  "train_state",
  "compile",
  "tiny_step",
  "embeddings",
  "cleaning",
)
# What a step needs done first (metadata only when its files are not in the folder yet).
NEEDS = {
  "source": ("metadata",),
  "clean_source": ("metadata",),
  "label_map": ("source",),
  "curriculum": ("source",),
  "shuffle": ("source",),
  "embeddings": ("clean_source",),
  "cleaning": ("embeddings",),
}
EMBEDDING_DIM = 512  # the paper's head
CSV_FILES = ("train.csv", "train_clean.csv", "regions.csv")


@dataclasses.dataclass(frozen=True)
class DryRunSettings:
  out: pathlib.Path
  steps: tuple[str, ...] = STEPS
  scale: float = 1.0  # of GLDv2's sizes
  workers: int = 2  # cleaning's processes (0: in this process)
  clean_fraction: float = 1.0  # of the landmarks cleaned (the time is scaled up)
  compile_backbone: str | None = "wide_resnet50_2"  # None: skip the compiled memory analysis
  compile_batch: int = 256  # global batch of the compiled step (the paper's)
  tiny_batch: int = 32
  shuffle_records: int = 100_000  # records read through the shuffled dataset
  seed: int = 0


def with_prerequisites(steps: Sequence[str], out: pathlib.Path) -> tuple[str, ...]:
  """`steps` and what they need, in `STEPS` order; metadata only if its files are missing."""
  unknown = [s for s in steps if s not in STEPS]
  if unknown:
    raise UsageError(f"unknown dry-run step(s) {unknown}; steps: {', '.join(STEPS)}")
  chosen = set(steps)
  pending = list(steps)
  while pending:
    for need in NEEDS.get(pending.pop(), ()):
      if need == "metadata" and all((out / f).is_file() for f in CSV_FILES):
        continue
      if need not in chosen:
        chosen.add(need)
        pending.append(need)
  return tuple(s for s in STEPS if s in chosen)


class _Run:
  """The objects steps hand on (the sources, the embeddings), and the rows written."""

  def __init__(self, settings: DryRunSettings):
    self.settings = settings
    self.sizes = SyntheticSizes.scaled(settings.scale) if settings.scale < 1 else SyntheticSizes()
    self.rows: list[dict[str, Any]] = []
    self.details: dict[str, Any] = {}
    self.source = self.clean_source = self.embeddings = None

  def step(self, name: str, what: str, fn: Callable[[], dict | None]) -> None:
    with measure() as m:
      extra = fn() or {}
    row = {"step": name, "what": what, **m.as_row(), **extra}
    self.rows.append(row)
    print(
      f"{name}: {m.seconds:.1f} s, peak {m.peak_rss_mb:,.0f} MB"
      + (f", workers {m.workers_peak_rss_mb:,.0f} MB" if m.workers_peak_rss_mb else ""),
      flush=True,
    )


def _metadata(run: _Run) -> dict:
  data = synthesize(run.settings.out, run.sizes, seed=run.settings.seed)
  counts = np.bincount(np.unique(data.landmark_of_photo, return_inverse=True)[1])
  return {
    "rows": int(len(data.photo_ids)),
    "landmarks": int(len(counts)),
    "photos per landmark (median, max)": f"{int(np.median(counts))}, {int(counts.max())}",
    "clean rows": int(data.clean.sum()),
    "clean landmarks": int(len(np.unique(data.landmark_of_photo[data.clean]))),
  }


def _source(run: _Run, clean: bool) -> dict:
  from landmark_jax.data import GLDv2Source

  source = GLDv2Source(
    run.settings.out,
    csv="train.csv",
    regions_csv="regions.csv",
    clean_csv="train_clean.csv" if clean else None,
    check_files=False,
  )
  if clean:
    run.clean_source = source
  else:
    run.source = source
  return {
    "rows": len(source),
    "landmarks": source.label_map.num_classes,
    "stage sizes": list(source.label_map.stage_sizes),
  }


def _label_map(run: _Run) -> dict:
  from landmark_jax.data.labels import LabelMap
  from landmark_jax.data.tables import read_landmark_table

  landmark_ids = run.source.landmark_ids()  # outside the timing below: the step's input
  regions = read_landmark_table(run.settings.out / "regions.csv", "region")
  started = time.perf_counter()
  label_map = LabelMap.from_ids((lid for lid in landmark_ids if lid is not None), regions)
  labels = label_map.to_labels(landmark_ids)
  if not np.array_equal(labels, run.source.labels):
    raise AssertionError("the label map built here disagrees with the source's")
  return {
    "rows": len(labels),
    "landmarks": label_map.num_classes,
    "map + labels s": time.perf_counter() - started,
  }


def _curriculum(run: _Run) -> dict:
  from landmark_jax.config import load_config
  from landmark_jax.train.curriculum import plan_stages

  plan = plan_stages(load_config("default"), run.source)
  run.details["curriculum"] = {
    "classes": list(plan.num_classes),
    "images": [len(s) for s in plan.sources],
    "epochs": list(plan.epochs),
    "steps": list(plan.steps),
  }
  return {
    "stages": len(plan.num_classes),
    "images per stage": [len(s) for s in plan.sources],
    "steps": plan.total_steps,
  }


def _shuffle(run: _Run) -> dict:
  import grain

  count = min(run.settings.shuffle_records, len(run.source))
  started = time.perf_counter()
  dataset = grain.MapDataset.source(run.source).shuffle(seed=run.settings.seed)
  dataset = dataset[0::1]  # this process's shard, as `train_dataset` takes it (one process)
  built = time.perf_counter() - started
  records = [dataset[i] for i in range(count)]
  read = time.perf_counter() - started - built
  if len({r["id"] for r in records}) != count:
    raise AssertionError("the shuffled records repeat")
  return {
    "rows": len(dataset),
    "records read": count,
    "build s": built,
    "records/s": count / max(read, 1e-9),
  }


def _model_and_optimizer(backbone: str, num_classes: int, dtype: str):
  import jax.numpy as jnp

  from landmark_jax.config import load_config
  from landmark_jax.models import LandmarkNet
  from landmark_jax.train import optim

  config = load_config("default")
  model = LandmarkNet(
    backbone,
    num_classes=num_classes,
    embedding_dim=EMBEDDING_DIM,
    dtype=jnp.dtype(dtype),
    classifier_bias=config.model.classifier_bias,
  )
  return config, model, optim.make_optimizer(config.optim, [])


def _nbytes(tree) -> int:
  import jax

  return int(
    sum(
      np.prod(x.shape, dtype=np.int64) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)
    )
  )


def state_breakdown(
  backbone: str, num_landmarks: int, image_size: int = 224, dtype: str = "bfloat16"
) -> dict[str, int]:
  """Bytes of each part of the train state at `num_landmarks` + 1 classes (`eval_shape`:
  nothing is allocated)."""
  import jax

  from landmark_jax.train.state import abstract_train_state

  _, model, tx = _model_and_optimizer(backbone, num_landmarks, dtype)
  state = abstract_train_state(model, tx, image_size)
  params = state.params

  def in_classifier(path):
    return any(getattr(k, "key", None) == "classifier" for k in path)

  opt_leaves = jax.tree_util.tree_leaves_with_path(state.opt_state)
  opt_classifier = sum(
    int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
    for path, x in opt_leaves
    if in_classifier(path) and x.ndim
  )
  parts = {
    "backbone params": _nbytes(params["backbone"]),
    "embedding params (fc + bn)": _nbytes(params["embedding_fc"]) + _nbytes(params["embedding_bn"]),
    "classifier params": _nbytes(params["classifier"]),
    "batch statistics": _nbytes(state.batch_stats),
    "optimizer: classifier momentum": opt_classifier,
    # The rest of the network's momentum, and the schedules' step counts (scalars).
    "optimizer: other momentum": _nbytes(state.opt_state) - opt_classifier,
    "center-loss centers": _nbytes(state.centers),
  }
  parts["total"] = sum(parts.values())
  parts["params count"] = int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))
  return parts


def _train_state(run: _Run) -> dict:
  classes = run.sizes.landmarks
  parts = state_breakdown("wide_resnet50_2", classes)
  # By hand: the classifier is a D × (n + 1) kernel and an (n + 1) bias in float32; the
  # centers n × D; SGD momentum one buffer per parameter.
  hand = {
    "classifier params": 4 * (EMBEDDING_DIM * (classes + 1) + classes + 1),
    "center-loss centers": 4 * EMBEDDING_DIM * classes,
  }
  hand["optimizer: classifier momentum"] = hand["classifier params"]
  for key, value in hand.items():
    if parts[key] != value:
      raise AssertionError(f"{key}: eval_shape says {parts[key]} bytes, by hand {value}")
  run.details["train_state_bytes"] = parts
  return {
    "classes": classes + 1,
    "state MB": parts["total"] / MB,
    "classifier + centers + momentum MB": (
      2 * hand["classifier params"] + hand["center-loss centers"]
    )
    / MB,
  }


def _compiled_step(
  backbone: str, num_landmarks: int, batch: int, image_size: int, dtype: str
) -> dict[str, Any]:
  """XLA's memory analysis of the jitted train step (abstract inputs: nothing allocated)."""
  import jax
  import jax.numpy as jnp

  from landmark_jax import sharding
  from landmark_jax.train.state import abstract_train_state
  from landmark_jax.train.step import make_train_step

  config, model, tx = _model_and_optimizer(backbone, num_landmarks, dtype)
  mesh = sharding.make_data_mesh()
  state = abstract_train_state(model, tx, image_size, sharding.replicated_sharding(mesh))
  batch_spec = sharding.batch_sharding(mesh)
  images = jax.ShapeDtypeStruct((batch, image_size, image_size, 3), jnp.uint8, sharding=batch_spec)
  labels = jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=batch_spec)
  step = make_train_step(model, tx, config.loss, mesh)
  started = time.perf_counter()
  compiled = step.lower(state, {"image": images, "label": labels}).compile()
  seconds = time.perf_counter() - started
  analysis = compiled.memory_analysis()
  fields = (
    "argument_size_in_bytes",
    "output_size_in_bytes",
    "alias_size_in_bytes",
    "temp_size_in_bytes",
    "generated_code_size_in_bytes",
  )
  memory = {f: int(getattr(analysis, f, 0) or 0) for f in fields} if analysis else {}
  return {
    "backbone": backbone,
    "global batch": batch,
    "devices": jax.device_count(),
    "batch per device": batch // jax.device_count(),
    "dtype": dtype,
    "compile s": seconds,
    **memory,
  }


def _compile(run: _Run) -> dict:
  s = run.settings
  info = _compiled_step(s.compile_backbone, run.sizes.landmarks, s.compile_batch, 224, "bfloat16")
  run.details["compiled_step"] = info
  per_device = (
    info.get("argument_size_in_bytes", 0)
    + info.get("temp_size_in_bytes", 0)
    + info.get("output_size_in_bytes", 0)
    - info.get("alias_size_in_bytes", 0)
  )
  return {
    "backbone": s.compile_backbone,
    "batch per device": info["batch per device"],
    "temp MB": info.get("temp_size_in_bytes", 0) / MB,
    "arguments MB": info.get("argument_size_in_bytes", 0) / MB,
    "device total MB": per_device / MB,
  }


def _tiny_step(run: _Run) -> dict:
  import jax

  from landmark_jax import sharding
  from landmark_jax.config import load_config
  from landmark_jax.models import LandmarkNet
  from landmark_jax.train import optim
  from landmark_jax.train.state import create_train_state
  from landmark_jax.train.step import make_train_step

  tiny = load_config("tiny_cpu")
  image_size = tiny.pipeline.image.crop_size
  model = LandmarkNet(
    "wide_resnet_tiny",
    num_classes=run.sizes.landmarks,
    embedding_dim=EMBEDDING_DIM,
    dtype=np.float32,
  )
  tx = optim.make_optimizer(tiny.optim, [])
  mesh = sharding.make_data_mesh()
  batch_size = run.settings.tiny_batch
  state = jax.jit(
    lambda rng: create_train_state(model, tx, rng, image_size),
    out_shardings=sharding.replicated_sharding(mesh),
  )(jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)
  batch = sharding.shard_batch(
    {
      "image": rng.integers(0, 256, (batch_size, image_size, image_size, 3), np.uint8),
      "label": rng.integers(0, run.sizes.landmarks + 1, batch_size).astype(np.int32),
    },
    mesh,
  )
  step = make_train_step(model, tx, tiny.loss, mesh)
  started = time.perf_counter()
  state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  first = time.perf_counter() - started
  started = time.perf_counter()
  state, metrics = step(state, batch)
  loss = float(jax.device_get(metrics["loss"]))
  second = time.perf_counter() - started
  if not np.isfinite(loss):
    raise AssertionError(f"the tiny step's loss is {loss}")
  return {
    "classes": run.sizes.landmarks + 1,
    "batch": batch_size,
    "image": image_size,
    "compile + first step s": first,
    "second step s": second,
    "loss": loss,
  }


EMBED_CHUNK = 131_072  # rows generated and written at a time (256 MB of 512-d float32)
LATENT = 64  # the synthetic views live in a 64-d subspace of the 512-d space


def write_synthetic_embeddings(path: pathlib.Path, labels: np.ndarray, seed: int = 0) -> None:
  """Unit-ish 512-d float32 rows, one per photo of dense label `labels[i]`: each landmark
  has 1–3 views (photos of a view at cosine ≈ 0.7–0.8 to each other), 10 % outliers, and
  3 % photos very near their view's center (near-duplicates of each other). Written chunk by
  chunk to a ``.npy``, so memory holds one chunk."""
  rng = np.random.default_rng(seed)
  num_labels = int(labels.max()) + 1 if len(labels) else 0
  views = rng.standard_normal((num_labels, 3, LATENT)).astype(np.float32)
  views /= np.linalg.norm(views, axis=-1, keepdims=True)
  view_count = rng.integers(1, 4, num_labels)
  projection = np.linalg.qr(rng.standard_normal((EMBEDDING_DIM, LATENT)))[0].T.astype(np.float32)
  with open(path, "wb") as f:
    np.lib.format.write_array_header_1_0(
      f,
      {
        "descr": np.dtype(np.float32).str,
        "fortran_order": False,
        "shape": (len(labels), EMBEDDING_DIM),
      },
    )
    for start in range(0, len(labels), EMBED_CHUNK):
      part = labels[start : start + EMBED_CHUNK]
      chunk_rng = np.random.default_rng([seed, start])
      view = (chunk_rng.random(len(part)) * view_count[part]).astype(np.int64)
      kind = chunk_rng.random(len(part))
      noise = np.where(kind < 0.03, 0.02, 0.6).astype(np.float32)[:, None]
      latent = views[part, view] + noise * chunk_rng.standard_normal(
        (len(part), LATENT), np.float32
      ) / np.sqrt(LATENT, dtype=np.float32)
      outliers = kind > 0.9
      latent[outliers] = chunk_rng.standard_normal((int(outliers.sum()), LATENT), np.float32)
      f.write(np.ascontiguousarray(latent @ projection, np.float32).tobytes())


def _embeddings(run: _Run) -> dict:
  path = run.settings.out / "embeddings.npy"
  write_synthetic_embeddings(path, run.clean_source.labels, run.settings.seed)
  run.embeddings = path
  return {"rows": len(run.clean_source), "dim": EMBEDDING_DIM, "file MB": path.stat().st_size / MB}


def _cleaning(run: _Run) -> dict:
  from landmark_jax.cleaning.dataset import clean_dataset
  from landmark_jax.config import load_config

  s = run.settings
  source = run.clean_source
  config = dataclasses.replace(load_config("default").cleaning, num_workers=s.workers)
  embeddings = np.load(run.embeddings, mmap_mode="r")
  landmarks = source.landmark_ids()
  photos_in = len(landmarks)
  if s.clean_fraction < 1:
    # A random share of the landmarks; the others' rows become "non-landmark" rows, which
    # cleaning leaves out, so the embeddings stay one memory map.
    chosen = np.random.default_rng(s.seed).random(source.label_map.num_classes) < s.clean_fraction
    keep = chosen[np.minimum(source.labels, len(chosen) - 1)] & (
      source.labels < source.label_map.num_classes
    )
    landmarks = [l if k else None for l, k in zip(landmarks, keep.tolist())]
    photos_in = int(keep.sum())
  started = time.perf_counter()
  result = clean_dataset(source.ids, landmarks, embeddings, config)
  seconds = time.perf_counter() - started
  cleaned = len(result.outcomes)
  share = cleaned / max(source.label_map.num_classes, 1)
  run.details["cleaning"] = {
    "settings": dataclasses.asdict(config),
    "landmarks cleaned": cleaned,
    "photos cleaned": photos_in,
    "share of landmarks": share,
    "seconds": seconds,
    "seconds scaled to all landmarks": seconds / max(share, 1e-12),
    "photos kept": int(result.keep.sum()),
    "centroids": int(len(result.centroids)),
    "near-duplicates dropped": sum(o.near_duplicates for o in result.outcomes),
    "landmarks without a valid cluster": len(result.landmarks_without_cluster),
  }
  return {
    "landmarks": cleaned,
    "photos": photos_in,
    "workers": s.workers,
    "centroids": int(len(result.centroids)),
    "all landmarks s (scaled)": seconds / max(share, 1e-12),
  }


RUNNERS: dict[str, tuple[str, Callable[[_Run], dict]]] = {
  "metadata": ("synthetic train.csv, train_clean.csv, regions.csv (NumPy)", _metadata),
  "source": ("GLDv2Source(train.csv, regions), check_files=False", lambda r: _source(r, False)),
  "clean_source": ("GLDv2Source(train.csv, clean_csv=train_clean.csv)", lambda r: _source(r, True)),
  "label_map": ("LabelMap.from_ids + to_labels over train.csv's ids", _label_map),
  "curriculum": ("plan_stages (default config: batch 256, 30 epochs)", _curriculum),
  "shuffle": ("grain MapDataset.source(…).shuffle + first records", _shuffle),
  "train_state": ("eval_shape of the train state, WRN-50-2, 512-d", _train_state),
  "compile": ("compiled train step's memory analysis", _compile),
  "tiny_step": ("one CPU train step, wide_resnet_tiny, 512-d head", _tiny_step),
  "embeddings": ("synthetic 512-d float32 embeddings → embeddings.npy", _embeddings),
  "cleaning": ("clean_dataset on the memory map (default cleaning config)", _cleaning),
}


def run_dry_run(settings: DryRunSettings) -> dict[str, Any]:
  """Runs the steps (with their prerequisites); returns the JSON payload (rows, details)."""
  import jax

  settings.out.mkdir(parents=True, exist_ok=True)
  steps = with_prerequisites(settings.steps, settings.out)
  if "compile" in steps and not settings.compile_backbone:
    steps = tuple(s for s in steps if s != "compile")
  run = _Run(settings)
  for name in steps:
    what, fn = RUNNERS[name]
    if name == "compile":
      what = f"{what}: {settings.compile_backbone}, batch {settings.compile_batch}"
    run.step(name, what, lambda fn=fn: fn(run))
  return {
    "machine": f"{platform.processor() or platform.machine()}, {jax.device_count()}× "
    f"{jax.devices()[0].device_kind}, JAX {jax.__version__}",
    "sizes": dataclasses.asdict(run.sizes),
    "settings": {**dataclasses.asdict(settings), "out": str(settings.out), "steps": list(steps)},
    "steps": run.rows,
    "details": run.details,
  }
