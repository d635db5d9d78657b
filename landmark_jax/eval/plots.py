"""The paper's threshold plots: sensitivity and specificity against η, and the
sensitivity–specificity trade-off, with the operating η marked."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; no display is assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_threshold_sweep(etas: np.ndarray, sensitivity: np.ndarray, specificity: np.ndarray,
                         eta: float, path: str | os.PathLike, title: str = "") -> None:
  fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
  ax.plot(etas, 100 * sensitivity, label="sensitivity (landmark photos recognised)", color="tab:blue")
  ax.plot(etas, 100 * specificity, label="specificity (non-landmark photos rejected)", color="tab:orange")
  ax.axvline(eta, color="gray", linestyle="--", linewidth=1)
  ax.annotate(f"η = {eta:.3f}", xy=(eta, 50), xytext=(6, 0), textcoords="offset points",
              color="gray", rotation=90, va="center")
  ax.set_xlabel("similarity threshold η (cosine similarity to the nearest centroid)")
  ax.set_ylabel("%")
  ax.set_ylim(-2, 102)
  ax.set_title(title or "Sensitivity and specificity against the threshold η")
  ax.grid(alpha=0.3)
  ax.legend(loc="lower left", fontsize=8)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def plot_sensitivity_specificity(sensitivity: np.ndarray, specificity: np.ndarray,
                                 operating: tuple[float, float], eta: float,
                                 path: str | os.PathLike, title: str = "") -> None:
  fig, ax = plt.subplots(figsize=(5.5, 5), dpi=120)
  ax.plot(100 * specificity, 100 * sensitivity, color="tab:blue", label="as η varies")
  ax.scatter([100 * operating[1]], [100 * operating[0]], color="tab:red", zorder=3,
             label=f"calibrated η = {eta:.3f}: sens {100 * operating[0]:.1f} %, "
                   f"spec {100 * operating[1]:.1f} %")
  ax.set_xlabel("specificity, % (non-landmark photos rejected)")
  ax.set_ylabel("sensitivity, % (landmark photos recognised)")
  ax.set_xlim(-2, 102)
  ax.set_ylim(-2, 102)
  ax.set_title(title or "Sensitivity–specificity trade-off")
  ax.grid(alpha=0.3)
  ax.legend(loc="lower left", fontsize=8)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
