"""The paper's threshold plots: sensitivity and specificity against η, and the
sensitivity–specificity trade-off, with the operating η marked.

Every curve and point says how many photos it rests on; a rate over no photos is named as
such ("no non-landmark photos") instead of drawn as nan. Each function saves its PNG and
returns the (closed) Figure, so that callers and tests can inspect what was drawn.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display is assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _photos(count: int, kind: str) -> str:
  return f"n = {count} {kind} photo{'s' * (count != 1)}"


def _rate(rate: float, interval: Sequence[float], count: int, kind: str) -> str:
  """``16.7 % (8.7–29.6 %, n = 48 landmark photos)``, or ``— (no landmark photos)``."""
  if count == 0:
    return f"— (no {kind} photos)"
  low, high = interval
  return f"{100 * rate:.1f} % ({100 * low:.1f}–{100 * high:.1f} %, {_photos(count, kind)})"


def _curve(ax, x: np.ndarray, y: np.ndarray, count: int, name: str, kind: str, **style) -> None:
  if count == 0:
    # An empty line still gives the legend an entry, which says why nothing is drawn.
    ax.plot([], [], label=f"{name}: — (no {kind} photos)", **style)
  else:
    ax.plot(x, 100 * y, label=f"{name} ({_photos(count, kind)})", **style)


def _save(fig: Figure, ax, path: str | os.PathLike) -> Figure:
  # Below the axes, outside them: inside, a legend covers some curve wherever it sits (the
  # old lower-left legend hid the start of the specificity curve). Constrained layout makes
  # room for it, so it is not cut off either.
  fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", fontsize=8, frameon=False)
  fig.savefig(path)
  plt.close(fig)  # pyplot forgets it; the returned Figure can still be drawn and inspected
  return fig


def plot_threshold_sweep(
  etas: np.ndarray,
  sensitivity: np.ndarray,
  specificity: np.ndarray,
  eta: float,
  path: str | os.PathLike,
  title: str = "",
  *,
  landmark_photos: int,
  non_landmark_photos: int,
) -> Figure:
  """Sensitivity and specificity (per η, as `threshold_sweep` gives them) against η; the
  counts are the photos each curve rests on."""
  fig, ax = plt.subplots(figsize=(7, 5), dpi=120, layout="constrained")
  _curve(
    ax,
    etas,
    sensitivity,
    landmark_photos,
    "sensitivity: landmark photos recognised",
    "landmark",
    color="tab:blue",
  )
  _curve(
    ax,
    etas,
    specificity,
    non_landmark_photos,
    "specificity: non-landmark photos rejected",
    "non-landmark",
    color="tab:orange",
  )
  ax.axvline(eta, color="gray", linestyle="--", linewidth=1)
  ax.annotate(
    f"η = {eta:.3f}",
    xy=(eta, 50),
    xytext=(6, 0),
    textcoords="offset points",
    color="gray",
    rotation=90,
    va="center",
  )
  ax.set_xlabel("similarity threshold η (cosine similarity to the nearest centroid)")
  ax.set_ylabel("%")
  ax.set_ylim(-2, 102)
  ax.set_title(title or "Sensitivity and specificity against the threshold η")
  ax.grid(alpha=0.3)
  return _save(fig, ax, path)


def plot_sensitivity_specificity(
  sensitivity: np.ndarray,
  specificity: np.ndarray,
  operating: Mapping[str, Any],
  eta: float,
  path: str | os.PathLike,
  title: str = "",
) -> Figure:
  """The trade-off as η varies, and the operating point with its 95 % Wilson intervals.

  Args:
    operating: `sensitivity_specificity` at `eta`: the rates, their ``_ci`` and the counts
      ``landmark_images`` and ``non_landmark_images``.
  """
  landmark, non_landmark = operating["landmark_images"], operating["non_landmark_images"]
  fig, ax = plt.subplots(figsize=(6, 6.5), dpi=120, layout="constrained")
  if landmark and non_landmark:
    ax.plot(
      100 * specificity,
      100 * sensitivity,
      color="tab:blue",
      label=f"as η varies ({_photos(landmark, 'landmark')}, "
      f"{_photos(non_landmark, 'non-landmark')})",
    )
    sens, spec = operating["sensitivity"], operating["specificity"]
    (sens_low, sens_high), (spec_low, spec_high) = (
      operating["sensitivity_ci"],
      operating["specificity_ci"],
    )
    ax.errorbar(
      [100 * spec],
      [100 * sens],
      xerr=[[100 * (spec - spec_low)], [100 * (spec_high - spec)]],
      yerr=[[100 * (sens - sens_low)], [100 * (sens_high - sens)]],
      fmt="o",
      color="tab:red",
      capsize=3,
      zorder=3,
      label=f"calibrated η = {eta:.3f} (bars: 95 % Wilson intervals)\n"
      f"sensitivity {_rate(sens, (sens_low, sens_high), landmark, 'landmark')}\n"
      f"specificity {_rate(spec, (spec_low, spec_high), non_landmark, 'non-landmark')}",
    )
  else:
    # One axis has no photos: there is no curve to draw, and the plot says why.
    missing = "; ".join(
      f"no {kind} photos: {rate} undefined"
      for count, kind, rate in (
        (landmark, "landmark", "sensitivity"),
        (non_landmark, "non-landmark", "specificity"),
      )
      if count == 0
    )
    ax.text(50, 50, missing.replace("; ", "\n"), ha="center", va="center", color="gray")
    ax.plot([], [], color="tab:blue", label=f"no trade-off curve: {missing}")
  ax.set_xlabel("specificity, % (non-landmark photos rejected)")
  ax.set_ylabel("sensitivity, % (landmark photos recognised)")
  ax.set_xlim(-2, 102)
  ax.set_ylim(-2, 102)
  ax.set_title(title or "Sensitivity–specificity trade-off")
  ax.grid(alpha=0.3)
  return _save(fig, ax, path)


def plot_score_distributions(
  groups: Mapping[str, np.ndarray], eta: float, path: str | os.PathLike, title: str = ""
) -> Figure:
  """Histograms of each photo's best similarity (to its nearest centroid), one per group
  (e.g. landmark photos whose nearest landmark is right, is wrong, and non-landmark photos),
  on shared bins, with η marked: how far apart the groups lie decides what any η can do."""
  fig, ax = plt.subplots(figsize=(7, 5), dpi=120, layout="constrained")
  present = [np.asarray(s, float) for s in groups.values() if len(s)]
  low = min((s.min() for s in present), default=0.0)
  high = max((s.max() for s in present), default=1.0)
  bins = np.linspace(min(low, eta) - 1e-3, max(high, eta) + 1e-3, 41)
  colors = ("tab:blue", "tab:purple", "tab:orange", "tab:green", "tab:red")
  for (name, scores), color in zip(groups.items(), colors):
    scores = np.asarray(scores, float)
    if len(scores) == 0:
      ax.plot([], [], color=color, label=f"{name}: none")
      continue
    # Densities, so that groups of very different sizes (2 % landmarks) stay comparable.
    ax.hist(
      scores,
      bins=bins,
      density=True,
      histtype="step",
      linewidth=1.6,
      color=color,
      label=f"{name} (n = {len(scores)}, median {np.median(scores):.3f})",
    )
  ax.axvline(eta, color="gray", linestyle="--", linewidth=1)
  ax.annotate(
    f"η = {eta:.3f}",
    xy=(eta, 0.5),
    xycoords=("data", "axes fraction"),
    xytext=(6, 0),
    textcoords="offset points",
    color="gray",
    rotation=90,
    va="center",
  )
  ax.set_xlabel("best similarity (cosine to the nearest centroid)")
  ax.set_ylabel("density (each group's area is 1, whatever its n)")
  ax.set_title(title or "Where each kind of photo scores")
  ax.grid(alpha=0.3)
  return _save(fig, ax, path)


def plot_ablation(
  summary: Sequence[Mapping[str, Any]],
  runs: Sequence[Mapping[str, Any]],
  metrics: Sequence[tuple[str, str]],
  path: str | os.PathLike,
) -> Figure:
  """One group of bars per metric, one bar per variant (its mean over the seeds), and each
  seed's value a dot on its bar, so that the spread shows.

  Args:
    summary: per variant ``{"variant", "label", "seeds", <metric>: {"mean", …}}``.
    runs: per run ``{"variant", <metric>: value}``.
    metrics: (key, axis label) pairs.
  """
  fig, ax = plt.subplots(figsize=(9, 5), dpi=120, layout="constrained")
  width = 0.8 / max(len(summary), 1)
  colors = plt.get_cmap("tab10")
  positions = np.arange(len(metrics))
  for i, row in enumerate(summary):
    x = positions + (i - (len(summary) - 1) / 2) * width
    ax.bar(
      x,
      [100 * row[key]["mean"] for key, _ in metrics],
      width * 0.9,
      color=colors(i),
      alpha=0.8,
      label=f"{row['label']} ({row['seeds']} seed{'s' * (row['seeds'] != 1)})",
    )
    for j, (key, _) in enumerate(metrics):
      values = [100 * r[key] for r in runs if r["variant"] == row["variant"]]
      ax.scatter([x[j]] * len(values), values, s=10, color="black", zorder=3)
  ax.set_xticks(positions, [label for _, label in metrics])
  ax.set_ylabel("%")
  ax.set_ylim(0, 102)
  ax.set_title("Ablation: each variant's mean over the seeds (dots: single seeds)")
  ax.grid(axis="y", alpha=0.3)
  return _save(fig, ax, path)
