"""How an index is built (`IndexConfig`) and searched (`SearchSetting`). Plain data: the
index modules and the run's config import it, and it imports nothing of theirs."""

from __future__ import annotations

import dataclasses

from landmark_jax.errors import ConfigError

BACKENDS = ("auto", "scann", "exact")


@dataclasses.dataclass(frozen=True)
class IndexConfig:
  """How the index is built. ScaNN's settings follow its own guidance for each size."""

  backend: str = "auto"  # "auto" (ScaNN, exact if unavailable), "scann" or "exact"
  brute_force_below: int = 20_000  # ScaNN brute force (exact scores) under this many vectors
  num_leaves: int = 0  # partitions; 0 = round(√n)
  leaves_to_search: int = 0  # partitions probed per query; 0 = max(num_leaves / 5, 16)
  reorder: int = 100  # candidates re-scored exactly after asymmetric hashing
  anisotropic_threshold: float = 0.2  # ScaNN's recommended value for dot product
  dims_per_block: int = 2  # asymmetric-hashing block size (2: ScaNN's default)
  training_sample_size: int = 100_000  # vectors used to train the partitioner

  def __post_init__(self):
    if self.backend not in BACKENDS:
      raise ConfigError(f"unknown index backend {self.backend!r}: one of {', '.join(BACKENDS)}")


@dataclasses.dataclass(frozen=True, order=True)
class SearchSetting:
  leaves_to_search: int  # partitions probed per query
  reorder: int  # candidates re-scored exactly (ScaNN's pre_reorder_num_neighbors)
