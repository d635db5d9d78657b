"""`train(config, workdir)`: curriculum stages of data-parallel SGD with checkpoints.

Resumes automatically from the latest checkpoint in ``workdir/checkpoints``: the state, the
curriculum stage and the data iterator's position are restored, so a resumed run follows
the same trajectory as an uninterrupted one. Metrics go to ``workdir/metrics.jsonl`` and
TensorBoard event files in ``workdir/tensorboard``; a progress bar shows epoch, step,
images/s and the loss parts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pathlib
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from landmark_jax import sharding
from landmark_jax.config import DataConfig, TrainConfig, to_dict
from landmark_jax.data import (
    DeviceIterator, GLDv2Source, ImageFolderSource, ImageSource, LabelMap, TfdsSource,
    eval_dataset, train_dataset)
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.embedding import Embedder, class_mean_embeddings
from landmark_jax.models import LandmarkNet
from landmark_jax.models.pretrained import load_pretrained_backbone, with_pretrained_backbone
from landmark_jax.train import curriculum, optim
from landmark_jax.train.checkpoints import Checkpointer
from landmark_jax.train.state import TrainState, create_train_state
from landmark_jax.train.step import make_train_step, stage_labels

logger = logging.getLogger(__name__)

LABEL_MAP_FILE = "label_map.json"
CONFIG_FILE = "config.json"

# A hook is called after every step with (step, state, metrics); raising stops the run.
Hook = Callable[[int, TrainState, dict], None]


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or Inf; the message names the step."""


@dataclasses.dataclass
class TrainResult:
  state: TrainState
  model: LandmarkNet
  label_map: LabelMap
  steps: int
  skipped_images: int
  holdout: dict[str, float] | None


def build_source(data: DataConfig, label_map: LabelMap | None = None) -> ImageSource:
  """The training source a `DataConfig` describes."""
  if data.kind == "demo":
    root = data.root or demo_dataset()
    return GLDv2Source(root, csv="train.csv", non_landmark_csv="non_landmark.csv",
                       regions_csv="landmarks.csv", label_map=label_map)
  if data.kind == "gldv2":
    return GLDv2Source(data.root, csv=data.csv, image_dir=data.image_dir or None,
                       clean_csv=data.clean_csv or None,
                       non_landmark_csv=data.non_landmark_csv or None,
                       regions_csv=data.regions_csv or None,
                       categories_csv=data.categories_csv or None, label_map=label_map)
  if data.kind == "folder":
    return ImageFolderSource(data.root, non_landmark_dir=data.non_landmark_dir,
                             regions_csv=data.regions_csv or None, label_map=label_map)
  if data.kind == "tfds":
    return TfdsSource(data.tfds_name, split=data.tfds_split, data_dir=data.tfds_data_dir or None,
                      image_key=data.tfds_image_key, label_key=data.tfds_label_key,
                      non_landmark_value=None if data.tfds_non_landmark_value < 0
                      else data.tfds_non_landmark_value, label_map=label_map)
  raise ValueError(f"unknown data.kind {data.kind!r}: demo, gldv2, folder or tfds")


def build_holdout_source(data: DataConfig, label_map: LabelMap) -> ImageSource | None:
  if data.kind == "demo":
    return GLDv2Source(data.root or demo_dataset(), csv="test.csv", label_map=label_map)
  if data.holdout_csv:
    return GLDv2Source(data.root, csv=data.holdout_csv, image_dir=data.image_dir or None,
                       label_map=label_map)
  return None


def make_model(config: TrainConfig, num_classes: int) -> LandmarkNet:
  return LandmarkNet(config.model.backbone, num_classes=num_classes,
                     embedding_dim=config.model.embedding_dim, dtype=jnp.dtype(config.model.dtype))


@dataclasses.dataclass(frozen=True)
class StagePlan:
  """How many classes, images, epochs and steps each curriculum stage has."""

  num_classes: tuple[int, ...]
  sources: tuple[ImageSource, ...]
  epochs: tuple[int, ...]
  steps: tuple[int, ...]
  steps_per_epoch: tuple[int, ...]  # every epoch of the run, in order (for the LR schedule)

  def first_step(self, stage: int) -> int:
    return sum(self.steps[:stage])


def plan_stages(config: TrainConfig, source: ImageSource) -> StagePlan:
  label_map = source.label_map
  use_curriculum = config.curriculum.enabled and label_map.num_stages > 1
  num_classes = label_map.stage_sizes if use_curriculum else (label_map.num_classes,)
  sources = tuple(source.stage_subset(k) for k in range(len(num_classes))) if use_curriculum \
      else (source,)
  epochs = curriculum.split_epochs(config.num_epochs, len(num_classes),
                                   config.curriculum.epochs_per_stage if use_curriculum else ())
  processes = jax.process_count()
  batch = config.pipeline.batch_size // processes
  steps, per_epoch = [], []
  for stage_source, stage_epochs in zip(sources, epochs):
    # Every process runs the same number of steps: the smallest shard decides.
    shard = len(stage_source) // processes
    if shard < batch:
      raise ValueError(f"a curriculum stage has {len(stage_source)} images, fewer than one "
                       f"batch of {config.pipeline.batch_size}")
    steps.append(stage_epochs * shard // batch)
    per_epoch += [(e + 1) * shard // batch - e * shard // batch for e in range(stage_epochs)]
  return StagePlan(tuple(num_classes), sources, tuple(epochs), tuple(steps), tuple(per_epoch))


def _load_or_save_label_map(workdir: pathlib.Path, data: DataConfig) -> ImageSource:
  path = workdir / LABEL_MAP_FILE
  if path.exists():  # resuming: the labels must mean what they meant
    return build_source(data, LabelMap.load(path))
  source = build_source(data)
  if jax.process_index() == 0:
    source.label_map.save(path)
  return source


class _MetricsLog:
  """JSONL + TensorBoard, written on process 0 only."""

  def __init__(self, workdir: pathlib.Path):
    self._enabled = jax.process_index() == 0
    if self._enabled:
      from tensorboardX import SummaryWriter
      self._jsonl = open(workdir / "metrics.jsonl", "a")
      self._writer = SummaryWriter(str(workdir / "tensorboard"))

  def write(self, step: int, values: dict[str, Any]) -> None:
    if not self._enabled:
      return
    self._jsonl.write(json.dumps({"step": step, **values}) + "\n")
    self._jsonl.flush()
    for key, value in values.items():
      if isinstance(value, (int, float)):
        self._writer.add_scalar(key, value, step)

  def close(self) -> None:
    if self._enabled:
      self._jsonl.close()
      self._writer.close()


def _initial_state(config: TrainConfig, model: LandmarkNet, tx, mesh) -> TrainState:
  image_size = config.pipeline.image.crop_size
  create = jax.jit(lambda rng: create_train_state(model, tx, rng, image_size),
                   out_shardings=sharding.replicated_sharding(mesh))
  state = create(jax.random.PRNGKey(config.seed))
  if config.model.pretrained:
    backbone = load_pretrained_backbone(config.model.pretrained, model.backbone)
    variables = with_pretrained_backbone(
        {"params": state.params, "batch_stats": state.batch_stats}, backbone)
    state = state.replace(params=variables["params"], batch_stats=variables["batch_stats"])
    state = sharding.replicate(state.replace(opt_state=tx.init(state.params)), mesh)
  return state


def abstract_train_state(config: TrainConfig, model: LandmarkNet, tx, mesh):
  """Shapes, dtypes and (replicated) shardings of a train state: orbax's restore target."""
  image_size = config.pipeline.image.crop_size
  shapes = jax.eval_shape(
      lambda: create_train_state(model, tx, jax.random.PRNGKey(0), image_size))
  replicated = sharding.replicated_sharding(mesh)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
                      shapes)


def _check_finite(step: int, metrics: dict[str, float]) -> None:
  # The parameters after the step too: a finite loss computed before an overflowing update
  # must not let that update into a checkpoint.
  bad = {k: metrics[k] for k in ("loss", "grad_norm", "param_norm") if not math.isfinite(metrics[k])}
  if bad:
    raise NonFiniteLossError(
        f"non-finite {', '.join(f'{k}={v}' for k, v in bad.items())} at step {step}: stopping; "
        "the last checkpoint (before this step) is intact")


def _grow_for_next_stage(config, plan: StagePlan, stage: int, state: TrainState, model, tx,
                         mesh, source: ImageSource) -> TrainState:
  old_n, new_n = plan.num_classes[stage], plan.num_classes[stage + 1]
  class_means = None
  if config.curriculum.new_class_init == "mean":
    new_labels = range(old_n, new_n)
    images = source.subset(np.flatnonzero((source.labels >= old_n) & (source.labels < new_n)))
    dataset = eval_dataset(images, dataclasses.replace(
        config.pipeline, batch_size=_eval_batch(config, mesh)))
    embedder = Embedder(model, {"params": state.params, "batch_stats": state.batch_stats},
                        mesh, normalize=False)
    class_means = class_mean_embeddings(embedder, dataset, new_labels)
  rng = jax.random.fold_in(state.rng, 1_000_003 + stage)
  grown = curriculum.grow_state(jax.device_get(state), tx, new_n,
                                config.curriculum.new_class_init, rng, class_means)
  return sharding.replicate(grown, mesh)


def _eval_batch(config: TrainConfig, mesh) -> int:
  devices = len(mesh.devices.reshape(-1))
  return max(devices, config.pipeline.batch_size // devices * devices)


def evaluate_holdout(model: LandmarkNet, state: TrainState, source: ImageSource,
                     config: TrainConfig, mesh) -> dict[str, float]:
  """Top-1 classification accuracy on held-out images, landmark and non-landmark apart."""
  dataset = eval_dataset(source, dataclasses.replace(
      config.pipeline, batch_size=_eval_batch(config, mesh)))
  correct, truth = [], []
  embedder = Embedder(model, {"params": state.params, "batch_stats": state.batch_stats}, mesh)
  for batch in embedder.iterate(dataset):
    labels = np.asarray(stage_labels(batch["label"], model.num_classes))
    keep = batch["mask"]
    correct.append((batch["logits"].argmax(-1) == labels)[keep])
    truth.append(labels[keep])
  correct, truth = np.concatenate(correct), np.concatenate(truth)
  is_landmark = truth < model.num_classes
  return {"landmark_accuracy": float(correct[is_landmark].mean()) if is_landmark.any() else math.nan,
          "non_landmark_accuracy": float(correct[~is_landmark].mean()) if (~is_landmark).any() else math.nan,
          "chance": 1.0 / (model.num_classes + 1), "images": int(len(truth))}


def train(config: TrainConfig, workdir: str | pathlib.Path, *, hooks: Sequence[Hook] = (),
          progress: bool = True) -> TrainResult:
  """Trains (or resumes training) in `workdir`; returns the final state and held-out accuracy."""
  if config.distributed:
    jax.distributed.initialize()
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  source = _load_or_save_label_map(workdir, config.data)
  if jax.process_index() == 0:
    (workdir / CONFIG_FILE).write_text(json.dumps(to_dict(config), indent=2))
  plan = plan_stages(config, source)
  mesh = sharding.make_data_mesh()
  decay_steps = optim.decay_steps_for(config.optim, plan.steps_per_epoch)
  tx = optim.make_optimizer(config.optim, decay_steps)
  schedules = optim.learning_rate_schedules(config.optim, decay_steps)
  checkpointer = Checkpointer(workdir / "checkpoints", config.keep_checkpoints,
                              config.async_checkpointing)
  total_steps = sum(plan.steps)
  if config.max_steps:
    total_steps = min(total_steps, config.max_steps)

  stage, data_state = 0, None
  latest = checkpointer.latest_step()
  if latest is not None:
    meta = checkpointer.restore_meta(latest)
    stage = meta["stage"]
    model = make_model(config, plan.num_classes[stage])
    abstract = abstract_train_state(config, model, tx, mesh)
    state, data_state, _ = checkpointer.restore(latest, abstract)
    logger.info("resumed from step %d (stage %d) in %s", latest, stage, workdir)
  else:
    state = _initial_state(config, make_model(config, plan.num_classes[0]), tx, mesh)
  step = int(state.step)
  log = _MetricsLog(workdir)
  bar = tqdm(total=total_steps, initial=step, disable=not progress or jax.process_index() != 0,
             desc="train", unit="step", dynamic_ncols=True)
  skipped_total = 0
  last_saved = latest
  try:
    while stage < len(plan.num_classes) and step < total_steps:
      model = make_model(config, plan.num_classes[stage])
      step_fn = make_train_step(model, tx, config.loss, mesh)
      pipeline = dataclasses.replace(config.pipeline, seed=config.seed + 7919 * stage)
      dataset, skipped = train_dataset(plan.sources[stage], pipeline,
                                       num_epochs=plan.epochs[stage])
      iterator = DeviceIterator(dataset, mesh)
      if data_state:
        iterator.set_state(data_state)
      data_state = None
      stage_end = min(plan.first_step(stage) + plan.steps[stage], total_steps)
      pending, started, images = None, time.perf_counter(), 0
      while step < stage_end:
        try:
          batch = next(iterator)
        except StopIteration:
          # Unreadable images were dropped, so the stage has fewer full batches than planned.
          logger.warning("stage %d ran out of images at step %d (%d unreadable skipped)",
                         stage, step, skipped.total)
          break
        state, metrics = step_fn(state, {"image": batch["image"], "label": batch["label"]})
        step += 1
        images += config.pipeline.batch_size
        # Read the previous step's metrics now: the host never waits for the step just queued.
        if pending is not None:
          _report(*pending, log, bar, schedules, plan, stage, images, started, config)
        pending = (step, metrics)
        for hook in hooks:
          hook(step, state, metrics)
        if step % config.checkpoint_every_steps == 0 and step != stage_end:
          _report(*pending, log, bar, schedules, plan, stage, images, started, config)
          pending = None
          checkpointer.save(step, state, iterator.get_state(),
                            {"stage": stage, "num_classes": plan.num_classes[stage]})
          last_saved = step
      if pending is not None:
        _report(*pending, log, bar, schedules, plan, stage, images, started, config)
      skipped_total += skipped.total
      logger.info("stage %d done at step %d; %d unreadable images skipped", stage, step,
                  skipped.total)
      if config.max_steps and step >= config.max_steps and stage_end < plan.first_step(stage) + plan.steps[stage]:
        break  # max_steps reached inside this stage
      if stage + 1 < len(plan.num_classes):
        state = _grow_for_next_stage(config, plan, stage, state, model, tx, mesh, source)
        stage += 1
        # The new stage starts from the beginning of its own pipeline: an empty data state.
        checkpointer.save(step, state, {}, {"stage": stage, "num_classes": plan.num_classes[stage]})
        last_saved = step
      else:
        break
    if last_saved != step:
      checkpointer.save(step, state, {}, {"stage": stage, "num_classes": plan.num_classes[stage],
                                          "finished": True})
  finally:
    checkpointer.wait_until_finished()
    bar.close()
    log.close()

  model = make_model(config, plan.num_classes[stage])
  holdout = None
  holdout_source = build_holdout_source(config.data, source.label_map)
  if holdout_source is not None:
    holdout = evaluate_holdout(model, state, holdout_source, config, mesh)
    logger.info("held-out accuracy: %s", holdout)
    if jax.process_index() == 0:
      (workdir / "holdout.json").write_text(json.dumps(holdout, indent=2))
  return TrainResult(state, model, source.label_map, step, skipped_total, holdout)


def _report(step, metrics, log, bar, schedules, plan, stage, images, started, config) -> None:
  values = {k: float(v) for k, v in jax.device_get(metrics).items()}
  _check_finite(step, values)
  bar.update(step - bar.n)
  if step % config.log_every_steps and step != 1:
    return
  seconds = time.perf_counter() - started
  first = plan.first_step(stage)
  per_epoch = plan.steps[stage] / plan.epochs[stage]
  values.update(stage=stage, epoch=sum(plan.epochs[:stage]) + int((step - 1 - first) // per_epoch),
                images_per_second=images / max(seconds, 1e-9),
                **{f"lr_{group}": float(s(step - 1)) for group, s in schedules.items()})
  log.write(step, values)
  bar.set_postfix(stage=stage, epoch=values["epoch"], loss=f"{values['loss']:.3f}",
                  acc=f"{values['accuracy']:.2f}", img_s=f"{values['images_per_second']:.0f}")
