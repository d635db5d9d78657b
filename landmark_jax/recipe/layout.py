"""Where the recipe's steps write, inside the workdir: the same layout as `fit` and the
demo (``round1/{train,embeddings,clean}``, ``train``, ``embeddings``, ``clean``, ``index``,
``report``), so `recognize --checkpoint W/train --index W/index` works on the result."""

from __future__ import annotations

import dataclasses
import pathlib

from landmark_jax.experiment import ROUND1


@dataclasses.dataclass(frozen=True)
class Layout:
  workdir: pathlib.Path  # absolute

  def round_dir(self, round_: int) -> pathlib.Path:
    return self.workdir / ROUND1 if round_ == 1 else self.workdir

  @property
  def split(self) -> pathlib.Path:
    return self.workdir / "split"

  @property
  def regions(self) -> pathlib.Path:
    return self.workdir / "regions.csv"

  @property
  def index(self) -> pathlib.Path:
    return self.workdir / "index"

  @property
  def report(self) -> pathlib.Path:
    return self.workdir / "report"

  @property
  def bundle(self) -> pathlib.Path:
    return self.workdir / "bundle"

  @property
  def own(self) -> pathlib.Path:
    """The recipe's own files: the attempt, heartbeats, a failed step, the timings."""
    return self.workdir / "recipe"
