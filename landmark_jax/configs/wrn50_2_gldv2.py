"""The paper's WRN-50-2 on Google Landmarks v2: the same as `default` (kept by this name
because it says what it trains).

    landmark-jax train --config wrn50_2_gldv2 --workdir runs/wrn50_2 data.root=/data/gldv2
"""

from landmark_jax.configs import default


def get_config():
  return default.get_config()
