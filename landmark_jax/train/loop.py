"""`train(config, workdir)`: curriculum stages of data-parallel SGD with checkpoints.

Resumes automatically from the latest checkpoint in ``workdir/checkpoints``: the state, the
curriculum stage and the data iterator's position are restored, so a resumed run follows
the same trajectory as an uninterrupted one. Metrics go to ``workdir/metrics.jsonl`` and
TensorBoard event files in ``workdir/tensorboard``; a progress bar shows epoch, step,
images/s, MFU where the chip's peak is known, and the loss parts. SIGTERM or SIGINT
checkpoints at the next step boundary (every process at the same step) and raises
`TrainingStopped`; the same call again resumes. The pieces: `curriculum` (stage plan,
growth), `state`, `step`, `optim`, `checkpoints` (the workdir), `metrics_log`, `holdout`,
`preemption`, `profiling`, `throughput`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np
from tqdm import tqdm

from landmark_jax import distributed, sharding
from landmark_jax.config import TrainConfig, to_dict
from landmark_jax.data import DeviceIterator, ImageSource, LabelMap, source_for, train_dataset
from landmark_jax.data.catalog import has_split, with_found_files
from landmark_jax.errors import ConfigError, DataError, TrainingStopped
from landmark_jax.models import LandmarkNet, model_variables
from landmark_jax.models.pretrained import load_pretrained_backbone, with_pretrained_backbone
from landmark_jax.train import curriculum, optim, recipe, throughput
from landmark_jax.train.checkpoints import (
  CHECKPOINTS_DIR,
  CONFIG_FILE,
  LABEL_MAP_FILE,
  Checkpointer,
  backbone_of_workdir,
  is_training_workdir,
  make_model,
)
from landmark_jax.train.holdout import HOLDOUT_FILE, evaluate_holdout
from landmark_jax.train.metrics_log import MetricsLog, NonFiniteLossError, check_finite
from landmark_jax.train.preemption import StopOnSignal
from landmark_jax.train.profiling import StepProfiler
from landmark_jax.train.state import TrainState, abstract_train_state, create_train_state
from landmark_jax.train.step import make_train_step

logger = logging.getLogger(__name__)

# A hook is called after every step with (step, state, metrics); raising stops the run.
Hook = Callable[[int, TrainState, dict], None]

__all__ = ["Hook", "NonFiniteLossError", "TrainResult", "TrainingStopped", "train"]


@dataclasses.dataclass
class TrainResult:
  state: TrainState
  model: LandmarkNet
  label_map: LabelMap
  steps: int
  skipped_images: int
  holdout: dict[str, float] | None


# What a resumed run must keep: what the checkpoint's shapes, labels and stage plan were made
# from. Anything else (learning rates, logging, length, workers, the later steps' sections)
# may change between runs, the user's choice.
MUST_MATCH_ON_RESUME = (
  "model",
  "data",
  "curriculum",
  "loss.kind",
  "loss.non_landmark_class",
  "pipeline.batch_size",
  "pipeline.image",
)


def is_done(workdir: str | os.PathLike) -> bool:
  """Whether training in `workdir` ran to its end: its last act, classifying the held-out
  photos, is written (a dataset without a held-out split never reads as done, and `train`
  then finds its last checkpoint at the end and returns at once)."""
  return (pathlib.Path(workdir) / HOLDOUT_FILE).is_file()


def flat_keys(tree: dict, prefix: str = "") -> dict:
  """A nested dict as one level of dotted keys: {"a": {"b": 1}} → {"a.b": 1}."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(flat_keys(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def changed_settings(
  path: pathlib.Path, config: TrainConfig, within: Sequence[str] | None = None
) -> str:
  """How `config` differs from the run config saved at `path` ("key: old → new, …", at most
  four keys shown), counting only keys under `within` when given; "" when nothing does."""
  before = flat_keys(json.loads(path.read_text()))
  now = flat_keys(json.loads(json.dumps(to_dict(config))))  # tuples → lists, as stored
  changed = sorted(
    k
    for k in before.keys() | now.keys()
    if before.get(k) != now.get(k)
    and (within is None or any(k == m or k.startswith(m + ".") for m in within))
  )
  shown = ", ".join(f"{k}: {before.get(k)!r} → {now.get(k)!r}" for k in changed[:4])
  return shown + (", …" if len(changed) > 4 else "")


def check_resumable(workdir: pathlib.Path, config: TrainConfig) -> None:
  """Refuses to resume a run in `workdir` with a config that changes what its checkpoints
  mean; the error names the differing keys."""
  path = workdir / CONFIG_FILE
  checkpoints = workdir / CHECKPOINTS_DIR
  # A run that wrote no checkpoint (refused or stopped before its first save) trained
  # nothing that a new config could contradict.
  if not checkpoints.is_dir() or not any(checkpoints.iterdir()) or not path.is_file():
    return
  changed = changed_settings(path, config, MUST_MATCH_ON_RESUME)
  if changed:
    raise ConfigError(
      f"{workdir} holds a run trained with another config ({changed}): "
      "resume with the same config, or use a new --workdir"
    )


def check_process_count(workdir: pathlib.Path, step: int, meta: dict) -> None:
  """Refuses to resume with another process count: each process's data position was saved
  for its share of the batches, which another count would cut differently."""
  saved = meta.get("process_count", 1)  # checkpoints before multi-host training: one
  if saved != jax.process_count():
    raise ConfigError(
      f"the checkpoint at step {step} in {workdir} was written by {saved} process(es) and "
      f"this run has {jax.process_count()}: resume with --num-processes {saved}, or use a "
      "new --workdir"
    )


def photos_to_train_on(source: ImageSource, config: TrainConfig) -> ImageSource:
  """The training photos, without the non-landmark ones when the config trains no
  non-landmark class (``loss.non_landmark_class=False``)."""
  if config.loss.non_landmark_class:
    warn_if_thin_non_landmark_class(source)
    return source
  return source.subset(np.flatnonzero(source.labels != source.label_map.non_landmark_label))


def warn_if_thin_non_landmark_class(source: ImageSource) -> None:
  """Says so when the non-landmark class has fewer photos than the landmarks: specificity
  rests on that class's variety. On the demo, 60 non-landmark photos against 126 landmark
  ones left held-out non-landmarks scoring like landmarks (sensitivity 0.27 at 95 %
  specificity, 3 seeds); 240 lifted it (docs/decisions.md, "Why the demo rejected most
  landmarks")."""
  counts = source.images_per_class()
  non_landmark, landmark = int(counts[-1]), int(counts[:-1].sum())
  if non_landmark < landmark:
    logger.warning(
      "the non-landmark class has %d training photos against %d landmark photos: a "
      "non-landmark class this thin is learned as its own photos, not as 'no landmark', "
      "and unseen non-landmark photos then score like landmarks; give it more, and more "
      "varied, photos (docs/decisions.md: 'Why the demo rejected most landmarks')",
      non_landmark,
      landmark,
    )


def rate_factors(config: TrainConfig, plan: curriculum.StagePlan):
  """The run's learning-rate decay: over the whole run (one stage, or
  ``curriculum.lr_schedule="global"``: ``optim.lr_decay_epochs`` counted over all stages) or
  restarted in each curriculum stage, decaying at the fractions ``optim.lr_decay_epochs``
  are of ``num_epochs`` (the setting, not the stages' sum: ``epochs_per_stage`` of 30 each
  decay at each stage's epochs 12 and 24)."""
  if len(plan.epochs) > 1 and config.curriculum.lr_schedule == "per_stage":
    return optim.stage_rate_factors(
      config.optim, plan.steps_per_epoch, plan.epochs, config.num_epochs
    )
  return optim.decay_steps_for(config.optim, plan.steps_per_epoch)


def _training_source(workdir: pathlib.Path, config: TrainConfig) -> ImageSource:
  path = workdir / LABEL_MAP_FILE
  if path.exists():  # resuming: the labels must mean what they meant
    return source_for(config.data, "train", LabelMap.load(path))
  return source_for(config.data, "train")


def _initial_state(config: TrainConfig, model: LandmarkNet, tx, mesh) -> TrainState:
  image_size = config.pipeline.image.crop_size
  create = jax.jit(
    lambda rng: create_train_state(model, tx, rng, image_size),
    out_shardings=sharding.replicated_sharding(mesh),
  )
  state = create(jax.random.PRNGKey(config.seed))
  weights = config.model.pretrained_weights
  if weights:
    backbone = (
      backbone_of_workdir(weights, config.model.backbone)
      if is_training_workdir(weights)
      else load_pretrained_backbone(weights, model.backbone, backbone_name=config.model.backbone)
    )
    variables = with_pretrained_backbone(model_variables(state.params, state.batch_stats), backbone)
    state = state.replace(params=variables["params"], batch_stats=variables["batch_stats"])
    state = sharding.replicate(state.replace(opt_state=tx.init(state.params)), mesh)
  return state


@dataclasses.dataclass
class _Run:
  """What every stage of one `train` call shares."""

  config: TrainConfig
  plan: curriculum.StagePlan
  mesh: jax.sharding.Mesh
  tx: Any
  schedules: dict
  checkpointer: Checkpointer
  log: MetricsLog
  bar: tqdm
  hooks: Sequence[Hook]
  total_steps: int
  stop: StopOnSignal
  profiler: StepProfiler
  peak_flops: float | None  # one device's; None: MFU unknown
  flops_per_step: float | None = None  # found at each stage's first step when peak_flops is
  # Images and time at the last logged step: images/s is the rate since then.
  meter: tuple[int, float] = (0, 0.0)

  def save(self, step: int, state: TrainState, data_state: dict, stage: int, **meta) -> None:
    # Each process saves its own data position; `process_count` says how many to resume with.
    self.checkpointer.save(
      step,
      state,
      data_state,
      {
        "stage": stage,
        "num_classes": self.plan.num_classes[stage],
        "process_count": jax.process_count(),
        **meta,
      },
    )


def _run_stage(
  run: _Run, stage: int, state: TrainState, step: int, data_state: dict | None
) -> tuple[TrainState, int, int, int | None]:
  """Steps of `stage` from `step` (and the data position `data_state`) to the stage's end
  or `max_steps`; returns the state, the step reached, the unreadable images skipped, and
  the step of the last checkpoint written (None: none)."""
  config, plan = run.config, run.plan
  model = make_model(config, plan.num_classes[stage])
  step_fn = make_train_step(model, run.tx, config.loss, run.mesh)
  pipeline = dataclasses.replace(config.pipeline, seed=config.seed + 7919 * stage)
  dataset, skipped = train_dataset(plan.sources[stage], pipeline, num_epochs=plan.epochs[stage])
  iterator = DeviceIterator(dataset, run.mesh)
  if data_state:
    iterator.set_state(data_state)
  stage_end = min(plan.first_step(stage) + plan.steps[stage], run.total_steps)
  pending, images, saved, stopped = None, 0, None, False
  run.meter = (0, time.perf_counter())
  run.flops_per_step = None
  while step < stage_end:
    try:
      batch = next(iterator)
    except StopIteration:
      # Unreadable images were dropped, so the stage has fewer full batches than planned.
      if jax.process_count() > 1:
        # The others still have batches: stopping here alone would leave them waiting in
        # the next step's collectives. Stop the run, naming this process (the watchdog
        # stops the others).
        raise DataError(
          f"process {jax.process_index()} ran out of images in stage {stage} at step "
          f"{step} ({skipped.total} unreadable skipped): remove the unreadable photos "
          "from the data, or lower num_epochs"
        ) from None
      logger.warning(
        "stage %d ran out of images at step %d (%d unreadable skipped)", stage, step, skipped.total
      )
      break
    batch = {"image": batch["image"], "label": batch["label"]}
    if run.peak_flops and run.flops_per_step is None:  # each stage's classifier differs
      run.flops_per_step = throughput.step_flops(step_fn, state, batch)
    run.profiler.before(step + 1)
    state, metrics = step_fn(state, batch)
    step += 1
    images += config.pipeline.batch_size
    run.profiler.after(step, metrics)
    # Read the previous step's metrics now: the host never waits for the step just queued.
    if pending is not None:
      _report(*pending, run, stage)
    pending = (step, metrics, images)
    for hook in run.hooks:
      hook(step, state, metrics)
    # Every process asks at every step, the stage's last included: the step they agree on
    # may be any (`preemption`).
    stopped = run.stop.requested(step)
    if stopped:
      run.stop.writing_checkpoint()
    if (stopped or step % config.checkpoint_every_steps == 0) and step != stage_end:
      _report(*pending, run, stage)
      pending = None
      run.save(step, state, iterator.get_state(), stage)
      saved = step
    if stopped:
      break  # at the stage's end, `train` saves the stage boundary's checkpoint as usual
  if pending is not None:
    _report(*pending, run, stage)
  ended = "stopped" if stopped else "done"  # a signal's stop is not the stage's end
  logger.info(
    "stage %d %s at step %d; %d unreadable images skipped", stage, ended, step, skipped.total
  )
  return state, step, skipped.total, saved, stopped


def train(
  config: TrainConfig,
  workdir: str | pathlib.Path,
  *,
  hooks: Sequence[Hook] = (),
  progress: bool = True,
  profile_steps: tuple[int, int] | None = None,
) -> TrainResult:
  """Trains (or resumes training) in `workdir`; returns the final state and held-out accuracy.

  SIGTERM or SIGINT, from the start of the call to its last step, writes a checkpoint at
  the next step boundary and raises `TrainingStopped` (on several processes, at the step
  they agree on); calling `train` again resumes from it. `profile_steps` (A, B): a
  profiler trace of steps A to B in ``workdir/profile``.

  On several hosts every process calls this with the same arguments (the workdir on a
  shared filesystem); join them first with `distributed.initialize` (the CLI's
  ``--coordinator-address/--num-processes/--process-id``). Without that, a cluster JAX
  detects (SLURM, Open MPI, TPU pods), or ``config.distributed``, joins here.
  """
  distributed.initialize(
    distributed.ProcessGroup(), force=config.distributed, preemption_notices=True
  )
  with StopOnSignal() as stop:
    return _train(config, pathlib.Path(workdir), hooks, progress, profile_steps, stop)


def _train(config, workdir, hooks, progress, profile_steps, stop: StopOnSignal) -> TrainResult:
  workdir.mkdir(parents=True, exist_ok=True)
  # Files found from the working directory are saved by their absolute path: the later
  # steps (embed, evaluate, a resume) may run from another folder.
  config = dataclasses.replace(config, data=with_found_files(config.data))
  check_resumable(workdir, config)
  recipe.check_pretrained(config)  # before the data is read: a config mistake, said at once
  source = _training_source(workdir, config)
  # Before anything is written: a refused run leaves no label map that a corrected rerun
  # (say, with data.regions_csv added) would take for its own.
  recipe.check_recipe(config, source)
  plan = curriculum.plan_stages(config, photos_to_train_on(source, config))
  if jax.process_index() == 0:
    source.label_map.save(workdir / LABEL_MAP_FILE)
    (workdir / CONFIG_FILE).write_text(json.dumps(to_dict(config), indent=2))
  mesh = sharding.make_data_mesh()
  decay_steps = rate_factors(config, plan)
  tx = optim.make_optimizer(config.optim, decay_steps)
  checkpointer = Checkpointer(
    workdir / CHECKPOINTS_DIR, config.keep_checkpoints, config.async_checkpointing
  )
  total_steps = min(plan.total_steps, config.max_steps or plan.total_steps)

  stage, data_state = 0, None
  latest = checkpointer.latest_step()
  if latest is not None:
    meta = checkpointer.restore_meta(latest)
    check_process_count(workdir, latest, meta)
    stage = meta["stage"]
    abstract = abstract_train_state(
      make_model(config, plan.num_classes[stage]),
      tx,
      config.pipeline.image.crop_size,
      sharding.replicated_sharding(mesh),
    )
    state, data_state, _ = checkpointer.restore(latest, abstract)
    logger.info("resumed from step %d (stage %d) in %s", latest, stage, workdir)
  else:
    state = _initial_state(config, make_model(config, plan.num_classes[0]), tx, mesh)
  step = int(state.step)
  run = _Run(
    config,
    plan,
    mesh,
    tx,
    optim.learning_rate_schedules(config.optim, decay_steps),
    checkpointer,
    MetricsLog(workdir, resume_step=latest),
    tqdm(
      total=total_steps,
      initial=step,
      desc="train",
      unit="step",
      disable=not progress or jax.process_index() != 0,
      dynamic_ncols=True,
    ),
    hooks,
    total_steps,
    stop,
    StepProfiler(profile_steps, workdir),
    throughput.run_peak(config.peak_tflops_per_device),
  )
  skipped_total, last_saved, stopped = 0, latest, False
  try:
    while stage < len(plan.num_classes) and step < total_steps:
      state, step, skipped, saved, stopped = _run_stage(run, stage, state, step, data_state)
      data_state = None
      skipped_total += skipped
      last_saved = saved or last_saved
      if stopped and saved == step:
        break  # stopped inside the stage: its checkpoint holds the data position
      cut_short = plan.first_step(stage) + plan.steps[stage] > total_steps
      if (cut_short and step >= total_steps) or stage + 1 == len(plan.num_classes):
        break  # max_steps reached inside this stage, or the last stage done
      state = curriculum.grow_for_next_stage(
        config, plan, stage, state, make_model(config, plan.num_classes[stage]), tx, mesh, source
      )
      stage += 1
      # The new stage starts from the beginning of its own pipeline: an empty data state.
      run.save(step, state, {}, stage)
      last_saved = step
      if stopped:
        break
    if last_saved != step:
      run.save(step, state, {}, stage, finished=True)
  finally:
    run.profiler.close(step)
    checkpointer.wait_until_finished()
    run.bar.close()
    run.log.close()
  # One process: a signal after the last step's check still stops here, before the
  # held-out evaluation (every step is saved; the rerun evaluates). Several processes
  # cannot agree on it any more, and evaluate (seconds) before leaving.
  if stopped or (jax.process_count() == 1 and run.stop.signal_number is not None):
    raise TrainingStopped(
      f"stopped by {run.stop.signal_name} at step {step} of {total_steps}, after writing "
      f"its checkpoint in {workdir / CHECKPOINTS_DIR}",
      step=step,
      signal_number=run.stop.signal_number,
    )

  model = make_model(config, plan.num_classes[stage])
  holdout = None
  if has_split(config.data, "holdout"):
    holdout = evaluate_holdout(
      model, state, source_for(config.data, "holdout", source.label_map), config
    )
    logger.info("held-out accuracy: %s", holdout)
    if jax.process_index() == 0:
      (workdir / HOLDOUT_FILE).write_text(json.dumps(holdout, indent=2))
  return TrainResult(state, model, source.label_map, step, skipped_total, holdout)


def _report(step: int, metrics, images: int, run: _Run, stage: int) -> None:
  """Checks and shows step `step`'s metrics; logs them every ``log_every_steps``, with the
  images/s (and MFU) since the last logged step (the first includes compilation)."""
  values = {k: float(v) for k, v in jax.device_get(metrics).items()}
  check_finite(step, values)
  run.bar.update(step - run.bar.n)
  if step % run.config.log_every_steps and step != 1:
    return
  plan = run.plan
  now = time.perf_counter()
  images_per_second = (images - run.meter[0]) / max(now - run.meter[1], 1e-9)
  run.meter = (images, now)
  first = plan.first_step(stage)
  per_epoch = plan.steps[stage] / plan.epochs[stage]
  values.update(
    stage=stage,
    epoch=sum(plan.epochs[:stage]) + int((step - 1 - first) // per_epoch),
    images_per_second=images_per_second,
    **{f"lr_{group}": float(s(step - 1)) for group, s in run.schedules.items()},
  )
  shown = {}
  if run.flops_per_step and run.peak_flops:
    values["flops_per_step"] = run.flops_per_step
    values["mfu"] = throughput.model_flops_utilization(
      run.flops_per_step,
      images_per_second / run.config.pipeline.batch_size,
      run.peak_flops,
      jax.device_count(),
    )
    shown["mfu"] = f"{values['mfu']:.1%}"
  run.log.write(step, values)
  run.bar.set_postfix(
    stage=stage,
    epoch=values["epoch"],
    loss=f"{values['loss']:.3f}",
    acc=f"{values['accuracy']:.2f}",
    img_s=f"{values['images_per_second']:.0f}",
    **shown,
  )
