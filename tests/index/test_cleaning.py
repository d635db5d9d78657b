import csv
import dataclasses
import functools

import numpy as np
import pytest
from scipy.cluster import hierarchy
from scipy.spatial.distance import pdist

from landmark_jax.cleaning import config as cleaning
from landmark_jax.cleaning.clusters import clean_landmark, cluster_embeddings
from landmark_jax.cleaning.dataset import clean_dataset
from landmark_jax.cleaning.result import LandmarkOutcome
from landmark_jax.data.labels import LabelMap
from landmark_jax.stages.clean import write_cleaning

# The clusters here are tight (cosine ≥ 0.995 within many of them), which near-duplicate
# removal would thin: these tests check the clustering, so they turn it off;
# tests/index/test_near_duplicates.py checks it.
CleaningConfig = functools.partial(cleaning.CleaningConfig, remove_near_duplicates=False)


def clustered(rng, centers, per_cluster, noise):
  points = np.concatenate([c + noise * rng.standard_normal((per_cluster, len(c))) for c in centers])
  return points / np.linalg.norm(points, axis=1, keepdims=True)


def unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def normalised_mean(x):
  """The reference centroid: the unit mean of the unit embeddings."""
  return unit(unit(np.asarray(x, np.float64)).mean(0))


def without_explanations(rows):
  return [{k: v for k, v in row.items() if k != "explanation"} for row in rows]


def same_partition(a, b):
  """Two flat clusterings are the same partition (ids may be numbered differently)."""
  pairs = set(zip(a.tolist(), b.tolist()))
  return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("linkage", ["average", "complete", "single"])
@pytest.mark.parametrize("threshold", [0.3, 0.6])
def test_clustering_equals_scipy_on_cosine_distance(linkage, threshold):
  rng = np.random.default_rng(0)
  x = clustered(rng, rng.standard_normal((5, 32)), 20, 0.35) * rng.uniform(0.5, 3, (100, 1))
  ours = cluster_embeddings(x, linkage, threshold)
  # Reference: scipy straight from the raw (unnormalised) vectors with its own cosine metric.
  reference = hierarchy.fcluster(
    hierarchy.linkage(pdist(x, "cosine"), method=linkage), t=threshold, criterion="distance"
  )
  assert same_partition(ours, reference)
  assert 1 < len(set(ours.tolist())) < 100  # a non-trivial cut


def test_three_angles_and_outliers_give_three_centroids():
  rng = np.random.default_rng(1)
  angles = np.eye(64)[:3] * 5  # three orthogonal "shooting angles"
  inliers = clustered(rng, angles, 12, 0.4)
  outliers = rng.standard_normal((6, 64))
  outliers /= np.linalg.norm(outliers, axis=1, keepdims=True)
  x = np.concatenate([inliers, outliers])
  result = clean_landmark("tower", x, CleaningConfig(distance_threshold=0.5, min_cluster_size=3))
  assert len(result.centroids) == 3
  np.testing.assert_array_equal(result.assignment[36:], -1)  # every outlier dropped
  assert (result.assignment[:36] >= 0).all()
  assert sorted(result.sizes.tolist()) == [12, 12, 12]
  # Each centroid is the normalised mean of its members and points along its angle.
  for j, centroid in enumerate(result.centroids):
    members = x[result.assignment == j]
    expected = members.mean(0) / np.linalg.norm(members.mean(0))
    np.testing.assert_allclose(centroid, expected, rtol=1e-5, atol=1e-6)
    assert np.isclose(np.linalg.norm(centroid), 1.0, atol=1e-6)
  assert sorted(int(np.argmax(c)) for c in result.centroids) == [0, 1, 2]


def test_large_landmark_is_sampled_and_the_rest_assigned():
  rng = np.random.default_rng(2)
  x = clustered(rng, np.eye(32)[:2] * 5, 300, 0.3)
  small_cap = CleaningConfig(distance_threshold=0.5, max_images_per_landmark=100)
  capped = clean_landmark(7, x, small_cap)
  full = clean_landmark(7, x, CleaningConfig(distance_threshold=0.5))
  assert len(capped.centroids) == len(full.centroids) == 2
  assert (capped.assignment >= 0).sum() == 600
  np.testing.assert_allclose(
    np.sort(capped.centroids @ full.centroids.T, axis=1)[:, -1], 1.0, atol=1e-3
  )


def test_sampled_landmark_reports_its_outliers_like_the_full_one():
  rng = np.random.default_rng(6)
  outliers = unit(rng.standard_normal((20, 32)))  # far from both angles and from each other
  x = np.concatenate([clustered(rng, np.eye(32)[:2] * 5, 150, 0.3), outliers])
  capped = clean_landmark(7, x, CleaningConfig(max_images_per_landmark=100))
  full = clean_landmark(7, x, CleaningConfig())
  expected = LandmarkOutcome(
    7, photos=320, kept=300, centroids=2, valid_clusters=2, outside_clusters=20
  )
  assert capped.outcome == full.outcome == expected
  assert capped.outcome.reasons == ("outside_clusters",) and capped.outcome.dropped == 20
  np.testing.assert_array_equal(capped.assignment[300:], -1)


def test_sampled_landmark_without_cluster_keeps_the_mean_of_all_its_photos():
  rng = np.random.default_rng(7)
  x = rng.standard_normal((120, 64))  # spread: no two photos within 0.3 of each other
  assert pdist(x, "cosine").min() > 0.3
  result = clean_landmark(
    "plaza", x, CleaningConfig(distance_threshold=0.3, max_images_per_landmark=50)
  )
  # All 120 photos, not only the 50 clustered ones.
  np.testing.assert_allclose(result.centroids, normalised_mean(x)[None], atol=1e-6)
  assert result.sizes.tolist() == [120] and (result.assignment == 0).all()
  assert result.outcome.reasons == ("no_valid_cluster_kept_whole",)


def test_reference_images_reject_clusters_far_from_them():
  rng = np.random.default_rng(3)
  x = clustered(rng, np.eye(16)[:2] * 5, 10, 0.2)
  config = CleaningConfig(distance_threshold=0.4)
  result = clean_landmark(1, x, config, references=np.eye(16)[:1])
  assert len(result.centroids) == 1 and int(np.argmax(result.centroids[0])) == 0
  assert (result.assignment[:10] == 0).all() and (result.assignment[10:] == -1).all()
  assert result.outcome == LandmarkOutcome(
    1,
    photos=20,
    kept=10,
    centroids=1,
    valid_clusters=1,
    below_reference=10,
    clusters_below_reference=1,
  )
  assert result.outcome.reasons == ("below_reference_similarity",)
  assert "10 photo(s) in 1 cluster(s) below reference_similarity=0.5" in result.outcome.explain(
    config
  )


def test_sampled_landmark_drops_the_rest_of_a_rejected_cluster_like_the_full_one():
  rng = np.random.default_rng(8)
  x = clustered(rng, np.eye(16)[:2] * 5, 150, 0.2)
  references = np.eye(16)[:1]
  capped = clean_landmark(1, x, CleaningConfig(max_images_per_landmark=100), references)
  full = clean_landmark(1, x, CleaningConfig(), references)
  assert (
    capped.outcome
    == full.outcome
    == LandmarkOutcome(
      1,
      photos=300,
      kept=150,
      centroids=1,
      valid_clusters=1,
      below_reference=150,
      clusters_below_reference=1,
    )
  )
  np.testing.assert_array_equal(capped.assignment, [0] * 150 + [-1] * 150)


def test_landmark_whose_clusters_all_miss_the_references_is_kept_whole():
  rng = np.random.default_rng(3)
  x = clustered(rng, np.eye(16)[1:3] * 5, 10, 0.2)
  config = CleaningConfig(distance_threshold=0.4)
  result = clean_landmark(1, x, config, references=np.eye(16)[:1])
  np.testing.assert_allclose(result.centroids, normalised_mean(x)[None], atol=1e-6)
  assert result.outcome.reasons == ("no_valid_cluster_kept_whole",)
  assert result.outcome.clusters_below_reference == 2
  assert "its 2 cluster(s) were all below reference_similarity=0.5" in result.outcome.explain(
    config
  )


def test_a_landmark_with_too_few_photos_keeps_one_centroid_of_both():
  rng = np.random.default_rng(5)
  x = rng.standard_normal((2, 16)) * np.array([[1.0], [3.0]])  # unnormalised on purpose
  result = clean_landmark("kiosk", x, CleaningConfig(min_cluster_size=3))
  # By hand: normalise each photo, average, normalise.
  a, b = x[0] / np.linalg.norm(x[0]), x[1] / np.linalg.norm(x[1])
  expected = (a + b) / np.linalg.norm(a + b)
  np.testing.assert_allclose(result.centroids, expected[None], rtol=1e-6, atol=1e-6)
  assert result.assignment.tolist() == [0, 0] and result.sizes.tolist() == [2]
  outcome = result.outcome
  assert (outcome.photos, outcome.kept, outcome.dropped, outcome.centroids) == (2, 2, 0, 1)
  assert outcome.reasons == ("no_valid_cluster_kept_whole",)


def two_photo_landmark_beside_a_clean_one(config):
  rng = np.random.default_rng(5)
  x = np.concatenate([clustered(rng, np.eye(16)[:1] * 5, 4, 0.2), rng.standard_normal((2, 16))])
  ids = [f"img{i}" for i in range(6)]
  return x, clean_dataset(ids, ["tower"] * 4 + ["kiosk"] * 2, x, config)


def test_the_two_photo_landmark_stays_in_the_cleaned_dataset():
  x, result = two_photo_landmark_beside_a_clean_one(CleaningConfig(min_cluster_size=3))
  assert result.keep.all() and result.centroid_landmarks == ["tower", "kiosk"]
  np.testing.assert_allclose(result.centroids[1], normalised_mean(x[4:]), atol=1e-6)
  assert dict(result.clean_rows())["kiosk"] == "img4 img5"
  report = result.report()
  assert report["landmarks_after"] == 2 and report["landmarks_kept_whole"] == ["kiosk"]
  (row,) = report["affected_landmarks"]
  assert row["explanation"] == (
    "no valid cluster (no cluster of min_cluster_size=3 or more photos within "
    "distance_threshold=0.5 (average linkage)): kept whole as one centroid of all 2 photos "
    "(keep_landmarks_without_cluster=True)"
  )


def test_with_the_flag_off_a_landmark_without_cluster_is_dropped_and_listed():
  config = CleaningConfig(min_cluster_size=3, keep_landmarks_without_cluster=False)
  _, result = two_photo_landmark_beside_a_clean_one(config)
  assert result.centroid_landmarks == ["tower"]
  assert result.keep.tolist() == [True] * 4 + [False] * 2
  assert result.landmarks_dropped == ["kiosk"] and result.landmarks_kept_whole == []
  report = result.report()
  assert report["landmarks_after"] == 1 and report["landmarks_dropped"] == ["kiosk"]
  (row,) = report["affected_landmarks"]
  assert without_explanations([row]) == [
    {
      "landmark_id": "kiosk",
      "photos": 2,
      "kept": 0,
      "dropped": 2,
      "centroids": 0,
      "reason": "no_valid_cluster_dropped",
    }
  ]
  assert "min_cluster_size=3" in row["explanation"]
  assert "all 2 photos dropped" in row["explanation"]
  assert "keep_landmarks_without_cluster=False" in row["explanation"]


def test_a_landmark_with_outliers_lists_them_with_reason_and_counts():
  rng = np.random.default_rng(1)
  inliers = clustered(rng, np.eye(64)[:3] * 5, 12, 0.4)
  outliers = unit(rng.standard_normal((6, 64)))
  gate = clustered(rng, np.eye(64)[5:6] * 5, 12, 0.4)
  x = np.concatenate([inliers, outliers, gate])
  result = clean_dataset(range(len(x)), ["tower"] * 42 + ["gate"] * 12, x, CleaningConfig())
  assert result.keep.tolist() == [True] * 36 + [False] * 6 + [True] * 12
  rows = result.report()["affected_landmarks"]  # the clean gate is not listed
  assert without_explanations(rows) == [
    {
      "landmark_id": "tower",
      "photos": 42,
      "kept": 36,
      "dropped": 6,
      "centroids": 3,
      "reason": "outside_clusters",
    }
  ]
  assert rows[0]["explanation"] == (
    "dropped: 6 photo(s) outside every cluster of min_cluster_size=3 or more photos within "
    "distance_threshold=0.5 (average linkage)"
  )


def spread_and_tight_landmarks(rng):
  """Six landmarks: two photographed tightly (one angle each), four whose photos are spread
  so widely that no two lie within cosine distance 0.3."""
  tight = [clustered(rng, np.eye(64)[i : i + 1] * 5, 8, 0.1) for i in range(2)]
  spread = [rng.standard_normal((5, 64)) for _ in range(4)]
  for photos in spread:
    assert pdist(photos, "cosine").min() > 0.3  # the premise: no cluster can form at 0.3
  names = ["tight0", "tight1", "spread0", "spread1", "spread2", "spread3"]
  groups = tight + spread
  landmarks = [name for name, g in zip(names, groups) for _ in g]
  return np.concatenate(groups), landmarks, groups


def test_threshold_0_3_keeps_all_six_landmarks_and_reports_the_four_spread_ones():
  x, landmarks, groups = spread_and_tight_landmarks(np.random.default_rng(9))
  config = CleaningConfig(distance_threshold=0.3, min_cluster_size=3)
  result = clean_dataset(range(len(x)), landmarks, x, config)
  report = result.report()
  assert report["landmarks_before"] == report["landmarks_after"] == 6
  assert report["images_after"] == report["images_before"] == 8 * 2 + 5 * 4
  assert report["landmarks_kept_whole"] == ["spread0", "spread1", "spread2", "spread3"]
  rows = report["affected_landmarks"]
  assert [row["landmark_id"] for row in rows] == report["landmarks_kept_whole"]
  assert all("distance_threshold=0.3" in row["explanation"] for row in rows)
  assert result.centroid_landmarks == ["tight0", "tight1"] + report["landmarks_kept_whole"]
  for centroid, photos in zip(result.centroids, groups):
    np.testing.assert_allclose(centroid, normalised_mean(photos), atol=1e-6)
  # The paper-strict rule reproduces the old outcome, now reported: 2 of 6 kept.
  strict = clean_dataset(
    range(len(x)), landmarks, x, dataclasses.replace(config, keep_landmarks_without_cluster=False)
  )
  assert strict.report()["landmarks_after"] == 2
  assert strict.report()["landmarks_dropped"] == ["spread0", "spread1", "spread2", "spread3"]


def test_report_md_and_dropped_csv_name_every_affected_landmark(tmp_path):
  rng = np.random.default_rng(10)
  solos = unit(rng.standard_normal((60, 32)))  # 60 one-photo landmarks: kept whole
  tower = np.concatenate(
    [clustered(rng, np.eye(32)[:1] * 5, 5, 0.2), unit(rng.standard_normal((2, 32)))]
  )  # one angle, two outliers
  x = np.concatenate([solos, tower])
  landmarks = [f"solo{i:02d}" for i in range(60)] + ["tower"] * 7
  result = clean_dataset([f"img{i}" for i in range(len(x))], landmarks, x, CleaningConfig())
  report = write_cleaning(result, LabelMap.from_ids(landmarks), tmp_path)
  with open(tmp_path / "dropped.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  expected = [
    {
      "landmark_id": f"solo{i:02d}",
      "photos": "1",
      "kept": "1",
      "dropped": "0",
      "centroids": "1",
      "reason": "no_valid_cluster_kept_whole",
    }
    for i in range(60)
  ]
  expected.append(
    {
      "landmark_id": "tower",
      "photos": "7",
      "kept": "5",
      "dropped": "2",
      "centroids": "1",
      "reason": "outside_clusters",
    }
  )
  assert rows == expected
  markdown = (tmp_path / "report.md").read_text()
  listed = [
    line.split(" | ")[0][2:]
    for line in markdown.splitlines()
    if line.startswith("| solo") or line.startswith("| tower")
  ]
  assert listed == [f"solo{i:02d}" for i in range(50)]  # the first 50 …
  assert "… and 11 more (all in dropped.csv)" in markdown  # … and where the rest are
  assert "min_cluster_size=3" in markdown and "distance_threshold=0.5" in markdown
  assert report["images_dropped"] == 2


def test_report_md_lists_a_short_report_whole(tmp_path):
  x, result = two_photo_landmark_beside_a_clean_one(CleaningConfig(min_cluster_size=3))
  write_cleaning(result, LabelMap.from_ids(["tower", "kiosk"]), tmp_path)
  markdown = (tmp_path / "report.md").read_text()
  assert "| kiosk | 2 | 2 | 0 | 1 | no valid cluster (" in markdown
  assert "more (all in dropped.csv)" not in markdown and "| tower |" not in markdown
  assert (tmp_path / "dropped.csv").read_text().splitlines() == [
    "landmark_id,photos,kept,dropped,centroids,reason",
    "kiosk,2,2,0,1,no_valid_cluster_kept_whole",
  ]


@pytest.mark.parametrize("keep_whole", [True, False])
@pytest.mark.parametrize("workers", [0, 2])
def test_clean_dataset_report_and_clean_csv(workers, keep_whole):
  rng = np.random.default_rng(4)
  a = clustered(rng, np.eye(16)[:2] * 5, 5, 0.2)  # landmark 10: two angles
  b = clustered(rng, np.eye(16)[2:3] * 5, 4, 0.2)  # landmark 20: one angle
  c = clustered(rng, np.eye(16)[3:6] * 5, 1, 0.2)  # landmark 30: three lone images
  nl = rng.standard_normal((2, 16))
  x = np.concatenate([a, b, c, nl])
  landmarks = [10] * 10 + [20] * 4 + [30] * 3 + [None] * 2
  ids = [f"img{i}" for i in range(len(x))]
  config = CleaningConfig(
    distance_threshold=0.4, num_workers=workers, keep_landmarks_without_cluster=keep_whole
  )
  result = clean_dataset(ids, landmarks, x, config)
  assert result.landmarks_without_cluster == [30]
  report = result.report()
  rows = report.pop("affected_landmarks")
  if keep_whole:
    assert result.centroid_landmarks == [10, 10, 20, 30]
    np.testing.assert_allclose(result.centroids[3], normalised_mean(c), atol=1e-6)
    after = {
      "images_after": 17,
      "images_dropped": 0,
      "landmarks_after": 3,
      "centroids": 4,
      "references": 4,
      "references_given": 0,  # one medoid per centroid
      "clusters_per_landmark_histogram": {"1": 2, "2": 1},
      "landmarks_kept_whole": ["30"],
      "landmarks_dropped": [],
    }
    row = {"kept": 3, "dropped": 0, "centroids": 1, "reason": "no_valid_cluster_kept_whole"}
  else:  # the paper-strict rule: landmark 30 loses its images
    assert result.centroid_landmarks == [10, 10, 20]
    after = {
      "images_after": 14,
      "images_dropped": 3,
      "landmarks_after": 2,
      "centroids": 3,
      "references": 3,
      "references_given": 0,
      "clusters_per_landmark_histogram": {"0": 1, "1": 1, "2": 1},
      "landmarks_kept_whole": [],
      "landmarks_dropped": ["30"],
    }
    row = {"kept": 0, "dropped": 3, "centroids": 0, "reason": "no_valid_cluster_dropped"}
  assert report == {
    "images_before": 17,
    "non_landmark_images": 2,
    "landmarks_before": 3,
    "landmarks_without_valid_cluster": ["30"],
    "settings": dataclasses.asdict(config),
    "near_duplicates_dropped": 0,
    **after,
  }
  assert without_explanations(rows) == [{"landmark_id": "30", "photos": 3, **row}]
  rows_csv = dict(result.clean_rows())
  assert rows_csv[20] == "img10 img11 img12 img13"
  assert rows_csv.get(30) == ("img14 img15 img16" if keep_whole else None)


@pytest.mark.parametrize(
  "override, named",
  [
    ("min_cluster_size=0", "min_cluster_size 0"),
    ("distance_threshold=0", "distance_threshold 0"),
    ("distance_threshold=2.5", "distance_threshold 2.5"),
    ("linkage=ward", "linkage 'ward'"),
  ],
)
def test_settings_out_of_range_are_one_line_before_any_work(tmp_path, capsys, override, named):
  from landmark_jax.cli import main

  assert (
    main(
      ["clean", "--embeddings", str(tmp_path / "absent"), "--out", str(tmp_path / "c"), override]
    )
    == 2
  )
  (line,) = capsys.readouterr().err.strip().splitlines()
  assert named in line and "cleaning:" in line


def test_clean_without_a_config_uses_the_models_own_cleaning(index_dir, trained, tmp_path):
  from landmark_jax.cli import main
  from landmark_jax.stages.clean import load_report

  assert (
    main(["clean", "--embeddings", str(index_dir / "embeddings"), "--out", str(tmp_path / "c")])
    == 0
  )
  settings = load_report(tmp_path / "c")["settings"]
  # The tiny model's run config cleans at 0.3 and needs 3 photos a cluster; `default`: 0.5.
  assert settings["distance_threshold"] == trained.config.cleaning.distance_threshold == 0.3
  assert settings["min_cluster_size"] == trained.config.cleaning.min_cluster_size
  assert (
    main(
      [
        "clean",
        "--embeddings",
        str(index_dir / "embeddings"),
        "--out",
        str(tmp_path / "d"),
        "--config",
        "default",
      ]
    )
    == 0
  )
  assert load_report(tmp_path / "d")["settings"]["distance_threshold"] == 0.5
