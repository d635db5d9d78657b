"""``python -m landmark_jax`` is ``landmark-jax``."""

import sys

from landmark_jax.cli.main import main

sys.exit(main())
