"""Synthetic GLDv2-size metadata for the dry run: ``train.csv``, ``train_clean.csv`` and a
regions CSV with Google Landmarks v2's row and landmark counts, and no photos.

Everything is built with NumPy array operations: ids, numbers and names become fixed-width
byte matrices, the cells of a line are laid side by side, and the padding is masked out
before the bytes are written. Writing 4.1 M rows takes seconds this way, where a Python
loop over rows (``csv.writer``) takes a minute.

The counts per landmark are long-tailed like GLDv2's (a log-normal with σ = 1.4: median ≈ 8,
a few landmarks with thousands of photos, at least 2 each). The clean subset keeps
`clean_landmarks` landmarks, drawn with a preference for the larger ones (cleaning drops
small landmarks first), and a random subset of each one's photos, `clean_photos` in all.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Sequence

import numpy as np

from landmark_jax.data.labels import REGIONS
from landmark_jax.errors import UsageError

# Google Landmarks v2: train.csv and train_clean.csv (Weyand et al., CVPR 2020).
GLDV2_PHOTOS = 4_132_914
GLDV2_LANDMARKS = 203_094
GLDV2_CLEAN_PHOTOS = 1_580_470
GLDV2_CLEAN_LANDMARKS = 81_313

# The share of landmarks in each curriculum part, in `REGIONS` order ([ours]: GLDv2 ships
# no regions; Europe is the largest part of Wikimedia Commons).
REGION_SHARES = (0.45, 0.25, 0.12, 0.18)
URL_PREFIX = b"https://synthetic.invalid/"
ROWS_PER_WRITE = 500_000  # bounds the byte matrices: ~40 MB per chunk of train.csv
HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


@dataclasses.dataclass(frozen=True)
class SyntheticSizes:
  photos: int = GLDV2_PHOTOS
  landmarks: int = GLDV2_LANDMARKS
  clean_photos: int = GLDV2_CLEAN_PHOTOS
  clean_landmarks: int = GLDV2_CLEAN_LANDMARKS

  @classmethod
  def scaled(cls, scale: float) -> "SyntheticSizes":
    """GLDv2's sizes times `scale` (each rounded, at least a few)."""
    if not 0 < scale <= 1:
      raise UsageError(f"scale {scale} is not in (0, 1]")
    return cls(
      *(
        max(minimum, round(n * scale))
        for n, minimum in (
          (GLDV2_PHOTOS, 40),
          (GLDV2_LANDMARKS, 8),
          (GLDV2_CLEAN_PHOTOS, 12),
          (GLDV2_CLEAN_LANDMARKS, 4),
        )
      )
    )

  def __post_init__(self):
    if not (
      2 * self.landmarks <= self.photos
      and self.clean_landmarks <= self.landmarks
      and self.clean_landmarks <= self.clean_photos <= self.photos
    ):
      raise UsageError(f"inconsistent synthetic sizes {self}")


@dataclasses.dataclass
class SyntheticData:
  """What was written: per-photo arrays in train.csv's row order, and the files."""

  photo_ids: np.ndarray  # (N,) S16 hex ids
  landmark_of_photo: np.ndarray  # (N,) int64 landmark ids
  clean: np.ndarray  # (N,) bool: the photo is in train_clean.csv
  region_of_landmark: np.ndarray  # (L,) int index into REGIONS
  train_csv: pathlib.Path
  clean_csv: pathlib.Path
  regions_csv: pathlib.Path


def _splitmix64(x: np.ndarray) -> np.ndarray:
  """A bijection of uint64 that looks random: distinct inputs give distinct ids."""
  with np.errstate(over="ignore"):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hex_ids(indices: np.ndarray, seed: int) -> np.ndarray:
  """16-hex-digit ids like GLDv2's (``S16``), distinct for distinct `indices`."""
  x = _splitmix64(indices.astype(np.uint64) ^ np.uint64(seed * 0x2545F4914F6CDD1D % 2**64))
  octets = x.astype(">u8").view(np.uint8).reshape(-1, 8)
  nibbles = np.stack([octets >> 4, octets & 15], axis=-1).reshape(-1, 16)
  return np.ascontiguousarray(HEX[nibbles]).view("S16").ravel()


def decimal(values: np.ndarray) -> np.ndarray:
  """Non-negative integers as decimal ``S`` strings (NumPy's astype goes through Python)."""
  values = np.asarray(values, np.int64)
  width = max(1, len(str(int(values.max())))) if len(values) else 1
  powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
  digits = (values[:, None] // powers) % 10
  chars = (digits + ord("0")).astype(np.uint8)
  # Leading zeros become padding (0 bytes), which `lines` drops; the last digit always stays.
  leading = np.cumsum(digits, axis=1) == 0
  leading[:, -1] = False
  chars[leading] = 0
  # Left-aligned, as NumPy's S strings are: shift each row's padding to its end.
  order = np.argsort(leading, axis=1, kind="stable")
  chars = np.take_along_axis(chars, order, axis=1)
  return np.ascontiguousarray(chars).view(f"S{width}").ravel()


def lines(columns: Sequence[np.ndarray], sep: bytes = b",") -> bytes:
  """CSV lines of ``S`` columns (cells without commas or quotes), one row per element."""
  rows = len(columns[0])
  parts = []
  for i, column in enumerate(columns):
    column = np.ascontiguousarray(column)
    parts.append(column.view(np.uint8).reshape(rows, column.dtype.itemsize))
    parts.append(np.full((rows, 1), ord(sep if i < len(columns) - 1 else b"\n"), np.uint8))
  matrix = np.concatenate(parts, axis=1)
  return matrix[matrix != 0].tobytes()


def _write(path: pathlib.Path, header: bytes, columns: Sequence[np.ndarray]) -> None:
  with open(path, "wb") as f:
    f.write(header)
    for start in range(0, len(columns[0]), ROWS_PER_WRITE):
      f.write(lines([c[start : start + ROWS_PER_WRITE] for c in columns]))


def long_tailed_counts(
  total: int, groups: int, rng: np.random.Generator, minimum: int = 2, sigma: float = 1.4
) -> np.ndarray:
  """`groups` counts ≥ `minimum` summing to `total`, log-normally spread (largest
  remainders round)."""
  weights = rng.lognormal(0.0, sigma, groups)
  share = weights / weights.sum() * (total - minimum * groups)
  counts = np.floor(share).astype(np.int64)
  short = total - minimum * groups - int(counts.sum())
  counts[np.argsort(counts - share)[:short]] += 1  # the largest fractional parts
  return counts + minimum


def _clean_counts(counts: np.ndarray, target: int) -> np.ndarray:
  """Per chosen landmark, photos kept: ~ the same share of each, ≥ 1, ≤ its count, summing
  to `target`."""
  share = counts * (target / counts.sum())
  kept = np.clip(np.floor(share).astype(np.int64), 1, counts)
  while (gap := target - int(kept.sum())) != 0:
    room = np.flatnonzero(kept < counts) if gap > 0 else np.flatnonzero(kept > 1)
    if not len(room):
      raise UsageError(f"cannot keep {target} clean photos of {counts.sum()}")
    # The landmarks furthest from their share first, one photo each per round.
    room = room[np.argsort((share - kept)[room] * np.sign(gap), kind="stable")[::-1]]
    kept[room[: abs(gap)]] += np.sign(gap)
  return kept


def synthesize(
  out: str | os.PathLike, sizes: SyntheticSizes = SyntheticSizes(), seed: int = 0
) -> SyntheticData:
  """Writes ``train.csv`` (id,url,landmark_id), ``train_clean.csv`` (landmark_id,images)
  and ``regions.csv`` (landmark_id,region) into `out`; see the module docstring."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  # Landmark ids: distinct, scattered over 0..2·L like GLDv2's (not 0..L-1 dense).
  landmark_ids = np.sort(rng.choice(2 * sizes.landmarks, sizes.landmarks, replace=False))
  counts = long_tailed_counts(sizes.photos, sizes.landmarks, rng)
  # train.csv's rows in a random order, as GLDv2's are not grouped by landmark.
  group = rng.permutation(np.repeat(np.arange(sizes.landmarks), counts))
  photo_ids = hex_ids(np.arange(sizes.photos), seed)

  # The clean subset: larger landmarks more likely, a random subset of each one's photos.
  chance = np.sqrt(counts.astype(np.float64))
  chosen = np.sort(
    rng.choice(sizes.landmarks, sizes.clean_landmarks, replace=False, p=chance / chance.sum())
  )
  kept = np.zeros(sizes.landmarks, np.int64)
  kept[chosen] = _clean_counts(counts[chosen], sizes.clean_photos)
  by_group = np.lexsort((rng.random(sizes.photos), group))  # random order within a landmark
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  rank = np.empty(sizes.photos, np.int64)
  rank[by_group] = np.arange(sizes.photos) - np.repeat(starts, counts)
  clean = rank < kept[group]

  regions = rng.choice(len(REGIONS), sizes.landmarks, p=REGION_SHARES)
  data = SyntheticData(
    photo_ids,
    landmark_ids[group],
    clean,
    regions,
    out / "train.csv",
    out / "train_clean.csv",
    out / "regions.csv",
  )
  _write(
    data.train_csv,
    b"id,url,landmark_id\n",
    [photo_ids, _urls(photo_ids), decimal(data.landmark_of_photo)],
  )
  _write_clean(data.clean_csv, photo_ids, group, clean, landmark_ids)
  names = np.array([r.encode() for r in REGIONS])
  _write(data.regions_csv, b"landmark_id,region\n", [decimal(landmark_ids), names[regions]])
  return data


def _urls(photo_ids: np.ndarray) -> np.ndarray:
  """``https://synthetic.invalid/<id>.jpg`` for each id, as one byte matrix (no Python)."""
  prefix = np.frombuffer(URL_PREFIX, np.uint8)
  suffix = np.frombuffer(b".jpg", np.uint8)
  ids = photo_ids.view(np.uint8).reshape(len(photo_ids), 16)
  matrix = np.concatenate(
    [
      np.broadcast_to(prefix, (len(ids), len(prefix))),
      ids,
      np.broadcast_to(suffix, (len(ids), len(suffix))),
    ],
    axis=1,
  )
  return np.ascontiguousarray(matrix).view(f"S{matrix.shape[1]}").ravel()


def _write_clean(
  path: pathlib.Path,
  photo_ids: np.ndarray,
  group: np.ndarray,
  clean: np.ndarray,
  landmark_ids: np.ndarray,
) -> None:
  """``landmark_id,images`` lines, landmarks in id order, photo ids space-separated: each
  clean photo is one cell ``[<landmark>,]<id>`` + a space (or the line's end)."""
  rows = np.flatnonzero(clean)
  rows = rows[np.argsort(group[rows], kind="stable")]
  groups = group[rows]
  first = np.r_[True, groups[1:] != groups[:-1]]
  last = np.r_[groups[1:] != groups[:-1], True]
  prefix = _masked_prefix(decimal(landmark_ids[groups]), first)
  with open(path, "wb") as f:
    f.write(b"landmark_id,images\n")
    for start in range(0, len(rows), ROWS_PER_WRITE):
      part = slice(start, start + ROWS_PER_WRITE)
      ends = np.where(last[part], ord("\n"), ord(" ")).astype(np.uint8)[:, None]
      matrix = np.concatenate([_bytes(prefix[part]), _bytes(photo_ids[rows[part]]), ends], axis=1)
      f.write(matrix[matrix != 0].tobytes())


def _bytes(column: np.ndarray) -> np.ndarray:
  column = np.ascontiguousarray(column)
  return column.view(np.uint8).reshape(len(column), column.dtype.itemsize)


def _masked_prefix(prefix: np.ndarray, first: np.ndarray) -> np.ndarray:
  """``<landmark>,`` on a landmark's first photo, empty on the others (byte matrices)."""
  matrix = np.concatenate([_bytes(prefix), np.zeros((len(prefix), 1), np.uint8)], axis=1)
  width = (matrix != 0).sum(axis=1)
  matrix[np.arange(len(matrix)), width] = ord(",")
  matrix[~first] = 0
  return np.ascontiguousarray(matrix).view(f"S{matrix.shape[1]}").ravel()
