"""`landmark-jax demo`: the whole pipeline on the embedded dataset, on a CPU, in minutes.

generate the dataset → train the tiny config (one stage: see `tiny_cpu`) on every training
photo → embed them → clean them (per-landmark clustering; photos outside valid clusters are
dropped) → train again from scratch on the photos cleaning kept plus every non-landmark photo
→ embed those with the new model → clean them into per-angle centroids → build the index →
calibrate η on the validation split → recognise the held-out views and unseen non-landmark
photos → the paper's table, a report and plots.

The first round lives in ``round1/`` (``train``, ``embeddings``, ``clean``); ``train/``,
``embeddings/``, ``clean/``, ``index/`` and ``report/`` are the second round's, so
``train/`` is the model behind ``index/``. `second_round=False` (``--single-round``) trains
once, as `landmark-jax ablation` does. Every step writes into one workdir and is skipped on
a second run when its output is there (`fresh=True` starts over).

The demo is `landmark-jax fit` on the embedded dataset (`fit.run_fit` with no photos): the
same steps, printed the same way, as a user's own photos take.
"""

from __future__ import annotations

import pathlib

from landmark_jax.eval.collection import MIN_PHOTOS
from landmark_jax.fit import run_fit, say_line
from landmark_jax.index import CentroidIndex

DEMO_CONFIG = "tiny_cpu"  # its cleaning, index and calibration sections are the demo's too


# How the demo describes its own calibration photos (recorded with η in the index).
DEMO_VALIDATION = "the validation split of the demo's data"


def _changed_since_built(index: CentroidIndex) -> str:
  """Why a reused index is not the one the demo made (its users edit it: the walkthrough
  of docs/your-own-landmarks.md did, before it worked on a copy), or ""."""
  edits = index.metadata.get("edits", [])
  if edits:
    ops = ", ".join(f"{e.get('op')} {' '.join(e.get('landmarks', []))}".strip() for e in edits)
    return f"this index was edited after the demo built it ({ops})"
  photos = index.metadata.get("calibration", {}).get("validation_photos")
  if photos is not None and photos != DEMO_VALIDATION:  # None: calibrated by an older demo
    return f"η was calibrated on {photos}, not on the demo's validation split"
  return ""


def _note_changes(index: CentroidIndex) -> None:
  changed = _changed_since_built(index)
  if changed:
    say_line(
      f"note: {changed}; the figures below include that (`landmark-jax demo --fresh` starts over)"
    )


def run_demo(
  workdir: str | pathlib.Path = "workdir/demo",
  *,
  fresh: bool = False,
  overrides: tuple[str, ...] = (),
  second_round: bool = True,
) -> dict:
  """`fit` on the embedded dataset, with the tiny config: one code path (`run_fit`)."""
  return run_fit(
    None,
    workdir,
    second_round=second_round,
    first_step="embedded dataset",
    model="tiny model",
    config=DEMO_CONFIG,
    overrides=tuple(overrides),
    fresh=fresh,
    fresh_flag="`landmark-jax demo --fresh`",
    validation_photos=DEMO_VALIDATION,
    title="Demo",
    min_photos=MIN_PHOTOS,
    check_index=_note_changes,
  )
