"""The plots as drawn: legends that cover no curve, counts on every curve, never "nan"."""

import matplotlib.text
import numpy as np
import pytest

from landmark_jax.eval.metrics import sensitivity_specificity
from landmark_jax.eval.plots import plot_sensitivity_specificity, plot_threshold_sweep
from landmark_jax.eval.scoring import ScoredPhotos, threshold_sweep


def scored(landmark: int, non_landmark: int) -> ScoredPhotos:
  """Landmark photos predicted right with scores spread over [0.5, 1], non-landmark photos
  scored over the same range: curves that run across the whole plot, corners included."""
  truth = [i % 4 for i in range(landmark)] + [None] * non_landmark
  scores = np.concatenate([np.linspace(0.5, 1.0, landmark), np.linspace(0.5, 1.0, non_landmark)])
  return ScoredPhotos(
    [f"p{i}" for i in range(len(truth))], truth, [t if t is not None else 0 for t in truth], scores
  )


def draw_both(photos: ScoredPhotos, folder):
  sweep = threshold_sweep(photos)
  operating = sensitivity_specificity(photos.predictions(0.8), photos.truth)
  return [
    plot_threshold_sweep(
      sweep["eta"],
      sweep["sensitivity"],
      sweep["specificity"],
      0.8,
      folder / "sweep.png",
      landmark_photos=operating["landmark_images"],
      non_landmark_photos=operating["non_landmark_images"],
    ),
    plot_sensitivity_specificity(
      sweep["sensitivity"], sweep["specificity"], operating, 0.8, folder / "trade_off.png"
    ),
  ]


def legends(fig):
  return list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]


def texts(fig) -> list[str]:
  fig.canvas.draw()  # tick labels get their text when drawn
  return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def test_legends_cover_no_curve_and_fit_the_figure(tmp_path):
  for fig in draw_both(scored(48, 120), tmp_path):
    fig.canvas.draw()
    (ax,) = fig.axes
    data_area = ax.get_window_extent()  # the axes rectangle, where every curve is drawn
    (legend,) = legends(fig)
    box = legend.get_window_extent()
    assert not box.overlaps(data_area), (box, data_area)
    # Inside the figure, so nothing of it is cut from the saved PNG.
    assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1
    assert fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1


def test_every_curve_says_how_many_photos_it_rests_on(tmp_path):
  sweep_fig, trade_off_fig = draw_both(scored(48, 120), tmp_path)
  sweep_labels = [t.get_text() for t in legends(sweep_fig)[0].get_texts()]
  assert any("sensitivity" in label and "n = 48 landmark photos" in label for label in sweep_labels)
  assert any(
    "specificity" in label and "n = 120 non-landmark photos" in label for label in sweep_labels
  )
  trade_off = " ".join(t.get_text() for t in legends(trade_off_fig)[0].get_texts())
  assert "n = 48 landmark photos" in trade_off and "n = 120 non-landmark photos" in trade_off
  assert "95 % Wilson" in trade_off


@pytest.mark.parametrize(
  "landmark, non_landmark, missing",
  [(24, 0, "no non-landmark photos"), (0, 24, "no landmark photos")],
)
def test_an_undefined_rate_is_named_never_nan(tmp_path, landmark, non_landmark, missing):
  for fig in draw_both(scored(landmark, non_landmark), tmp_path):
    words = texts(fig)
    assert not [w for w in words if "nan" in w.lower()], words
    assert any(missing in w for w in words), words
