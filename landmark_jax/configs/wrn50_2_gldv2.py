"""The paper's WRN-50-2 on Google Landmarks v2: the same as `default` (kept by this name
because it says what it trains). Every input of the method, in full:

    landmark-jax regions --landmarks-csv /data/gldv2/landmarks.csv --out /data/gldv2/regions.csv
    landmark-jax train --config wrn50_2_gldv2 --workdir runs/wrn50_2 \\
        data.root=/data/gldv2 data.non_landmark_csv=non_landmark.csv \\
        data.regions_csv=regions.csv model.pretrained=/weights/wide_resnet50_2-9ba9bcbe.pth

Without the non-landmark photos, the regions or the pretrained weights, training refuses to
start and names the setting (and the one that declines it); `default`'s docstring says more.
"""

from landmark_jax.configs import default


def get_config():
  return default.get_config()
