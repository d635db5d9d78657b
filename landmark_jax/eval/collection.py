"""The test set as a user's collection: how many photos of each kind it holds, how many a
figure must rest on (`MIN_PHOTOS`), and a collection emulated at the paper's landmark share
(1–3 % of a user's photos show a landmark)."""

from __future__ import annotations

import logging
import math

import numpy as np

from landmark_jax.data import ImageSource
from landmark_jax.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

# Fewest photos a headline figure may rest on. With 20 photos the 95 % Wilson interval of a
# rate near 100 % is still about 16 points wide (20 of 20: 83.9–100 %), and one photo more or
# less moves the rate by 5 points: below that a figure says more about the draw than about
# the model.
MIN_PHOTOS = 20


def _photos(count: int, kind: str) -> str:
  return f"{count} {kind} photo{'s' * (count != 1)}"


def landmark_photos_wanted(non_landmark_photos: int, landmark_share: float) -> int:
  """How many landmark photos make `landmark_share` of a collection next to
  `non_landmark_photos` (at least one): what `emulate_collection` samples."""
  if not 0 < landmark_share < 1:
    raise ConfigError(f"landmark share must be in (0, 1) (exclusive), got {landmark_share}")
  if non_landmark_photos == 0:
    raise DataError(
      "the test set has no non-landmark photos, so no share of landmark photos "
      "can be emulated: leave the landmark share out to keep the test set as it is"
    )
  return max(1, round(landmark_share / (1 - landmark_share) * non_landmark_photos))


def photo_counts(source: ImageSource) -> tuple[int, int]:
  """(landmark photos, non-landmark photos) of a source, from its labels alone."""
  non_landmark = int(np.sum(source.labels == source.label_map.non_landmark_label))
  return len(source.labels) - non_landmark, non_landmark


def check_collection_size(
  source: ImageSource, landmark_share: float, min_photos: int = MIN_PHOTOS
) -> None:
  """Raises `DataError` when `emulate_collection(source, landmark_share)` would keep fewer
  than `min_photos` landmark photos, saying what would be enough. Needs only the labels, so
  it runs before any photo is embedded."""
  landmark, non_landmark = photo_counts(source)
  kept = min(landmark, landmark_photos_wanted(non_landmark, landmark_share))
  if kept >= min_photos:
    return
  stated = (
    f"a {100 * landmark_share:g} % landmark share of "
    f"{_photos(non_landmark, 'non-landmark')} keeps {_photos(kept, 'landmark')}, "
    f"fewer than --min-photos {min_photos}"
  )
  if landmark < min_photos:
    raise DataError(
      f"{stated}; the test set has only {landmark} landmark photos: add landmark "
      "photos or lower --min-photos (0 turns the check off)"
    )
  # What would keep min_photos: the fewest non-landmark photos at this share, and the
  # smallest share (to 0.1 %, rounded up) with these photos, by the rounding above.
  needed = max(1, math.floor((min_photos - 0.5) * (1 - landmark_share) / landmark_share))
  while landmark_photos_wanted(needed, landmark_share) < min_photos:
    needed += 1
  share = math.ceil(1000 * min_photos / (non_landmark + min_photos)) / 1000
  larger_share = f"a share of at least {100 * share:g} %" if share < 1 else "a larger share"
  raise DataError(
    f"{stated}: use at least {needed} non-landmark photos, {larger_share} "
    "(--landmark-share), or a lower --min-photos (0 turns the check off)"
  )


def emulate_collection(source: ImageSource, landmark_share: float, seed: int = 0) -> ImageSource:
  """A test set where `landmark_share` of the photos show a landmark (a user's collection:
  the paper's 1–3 %): every non-landmark photo is kept and landmark photos are sampled
  (`landmark_photos_wanted`). When the test set has too few landmark photos for the share,
  all are kept and the share falls short (logged)."""
  non_landmark = np.flatnonzero(source.labels == source.label_map.non_landmark_label)
  landmark = np.flatnonzero(source.labels != source.label_map.non_landmark_label)
  wanted = landmark_photos_wanted(len(non_landmark), landmark_share)
  if wanted < len(landmark):
    landmark = np.sort(np.random.default_rng(seed).choice(landmark, wanted, replace=False))
  elif wanted > len(landmark):
    logger.warning(
      "a %g %% landmark share of %d non-landmark photos needs %d landmark photos, "
      "the test set has %d: all kept, a %.1f %% share",
      100 * landmark_share,
      len(non_landmark),
      wanted,
      len(landmark),
      100 * len(landmark) / (len(landmark) + len(non_landmark)),
    )
  return source.subset(np.sort(np.concatenate([landmark, non_landmark])))


def check_enough_photos(
  landmark_photos: int, non_landmark_photos: int, min_photos: int = MIN_PHOTOS
) -> None:
  """Raises `DataError` when sensitivity would rest on fewer than `min_photos` landmark
  photos or specificity on fewer than `min_photos` non-landmark photos (0: only when there
  are no photos at all)."""
  if landmark_photos + non_landmark_photos == 0:
    raise DataError("no test photos to evaluate")
  if landmark_photos >= min_photos and non_landmark_photos >= min_photos:
    return
  if landmark_photos >= min_photos:
    more = "more non-landmark photos"
  elif non_landmark_photos >= min_photos:
    more = "more landmark photos (or a larger --landmark-share)"
  else:
    more = "more photos of both kinds"
  raise DataError(
    f"sensitivity would rest on {_photos(landmark_photos, 'landmark')} and specificity on "
    f"{_photos(non_landmark_photos, 'non-landmark')}; each needs at least --min-photos "
    f"{min_photos} (min_photos={min_photos}) to mean something: evaluate on {more}, or "
    "lower --min-photos (0 turns the check off; figures are then shown with their n)"
  )
