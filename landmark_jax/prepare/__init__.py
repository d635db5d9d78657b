"""Getting a dataset onto local disk: downloading (resumable, verified), extracting, and
packing into ArrayRecord shards. `landmark-jax prepare gldv2` is the command."""

from landmark_jax.prepare.gldv2 import DEFAULT_BASE_URL, PrepareResult, parse_parts, prepare_gldv2

__all__ = ["DEFAULT_BASE_URL", "PrepareResult", "parse_parts", "prepare_gldv2"]
