"""Packed ArrayRecord shards (`landmark_jax.data.packed`) and the GLDv2 source reading them:
the bytes and pixels of the JPEG files, resized photos against an independent Pillow resize,
photos absent from the shards, grain worker processes, and `source_for` from a config."""

import io
import logging
import os

import numpy as np
import pytest
from PIL import Image, ImageOps

from landmark_jax.config import load_config
from landmark_jax.data import GLDv2Source, PipelineConfig, eval_dataset, open_image, source_for
from landmark_jax.data.config import DataConfig
from landmark_jax.data.packed import PackedImages, pack_folder, shrink_image
from landmark_jax.errors import ConfigError
from tests.helpers import encode, gradient_image

RESIZE = 256


@pytest.fixture(scope="module")
def packed(landmarks_mini, tmp_path_factory):
  """landmarks-mini's photos packed as they are, three shards."""
  out = tmp_path_factory.mktemp("packed") / "packed"
  result = pack_folder(landmarks_mini / "images", out, shard_size=20, progress=False)
  assert (result.records, result.shards, result.skipped) == (55, 3, ())
  return out


def photos(root):
  images = root / "images"
  return {p.relative_to(images).as_posix(): p.read_bytes() for p in images.rglob("*.jpg")}


def pipeline_images(source, num_workers=0):
  config = PipelineConfig(batch_size=8, num_workers=num_workers)
  images = {}
  for batch in eval_dataset(source, config, shard_index=0, shard_count=1):
    images.update(
      (str(i), image) for i, image, m in zip(batch["id"], batch["image"], batch["mask"]) if m
    )
  return images


def test_the_shards_hold_every_photos_bytes(landmarks_mini, packed):
  assert dict(PackedImages(packed).items()) == photos(landmarks_mini)
  # Packing again with the same photos and settings writes nothing.
  again = pack_folder(landmarks_mini / "images", packed, shard_size=20, progress=False)
  assert again.reused and again.records == 55


def test_resized_photos_match_an_independent_pillow_resize(landmarks_mini, tmp_path):
  out = tmp_path / "packed"
  pack_folder(landmarks_mini / "images", out, resize=RESIZE, shard_size=64, progress=False)
  originals = photos(landmarks_mini)
  packed = dict(PackedImages(out).items())
  assert packed.keys() == originals.keys()
  for n, (name, data) in enumerate(sorted(originals.items())):
    with Image.open(io.BytesIO(data)) as original:
      width, height = original.size
      # Pillow's own thumbnail (draft decode, Lanczos) then JPEG quality 90, done here.
      reference = original.copy() if max(width, height) <= RESIZE else None
      if reference is None:
        original.thumbnail((RESIZE, RESIZE), Image.Resampling.LANCZOS)
        reference = Image.open(io.BytesIO(encode(ImageOps.exif_transpose(original), quality=90)))
    got = Image.open(io.BytesIO(packed[name]))
    if max(width, height) <= RESIZE:
      assert packed[name] == data  # small photos are stored as they are
      continue
    assert max(got.size) == RESIZE
    assert abs(got.size[0] / got.size[1] - width / height) < 2 / min(got.size)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(reference.convert("RGB")))
    if n % 8:
      continue
    # And close to a plain full-resolution Lanczos resize (draft decoding costs little).
    plain = np.asarray(
      Image.open(io.BytesIO(data)).convert("RGB").resize(got.size, Image.Resampling.LANCZOS),
      np.float32,
    )
    assert np.abs(np.asarray(got, np.float32) - plain).mean() < 4


def test_a_rotated_photo_is_shrunk_upright(tmp_path):
  image = gradient_image(300, 200)
  exif = Image.Exif()
  exif[0x0112] = 6  # shown rotated 90° clockwise: 200×300 upright
  data = encode(image, quality=95, exif=exif.tobytes())
  shrunk = shrink_image(data, 150)
  with Image.open(io.BytesIO(shrunk)) as stored:
    assert stored.size == (100, 150) and stored.getexif().get(0x0112) is None
  upright = np.asarray(open_image(data).resize((100, 150), Image.Resampling.LANCZOS), np.float32)
  assert np.abs(np.asarray(open_image(shrunk), np.float32) - upright).mean() < 4
  assert shrink_image(data, 300) == data  # not larger than asked: kept as it is


def test_shrinking_refuses_what_no_decode_of_the_library_accepts(tmp_path):
  """A scan bomb or a TIFF in a downloaded dataset is skipped by `prepare --pack --resize`
  before Pillow decodes it (issue 33): packing would otherwise spend the bomb's decode, and
  the photo could never be read at training anyway. Its honest twin is shrunk."""
  from tests.hostile_images import scan_bomb

  images = tmp_path / "images"
  images.mkdir()
  honest = encode(gradient_image(600, 400), "JPEG", quality=90, progressive=True)
  (images / "honest.jpg").write_bytes(honest)
  (images / "bomb.jpg").write_bytes(scan_bomb(side=256, repeats=200))
  tiff = io.BytesIO()
  gradient_image(600, 400).save(tiff, "TIFF")
  (images / "named_like_a.jpg").write_bytes(tiff.getvalue())
  result = pack_folder(images, tmp_path / "packed", resize=RESIZE, progress=False)
  assert result.records == 1
  assert sorted(result.skipped) == ["bomb.jpg", "named_like_a.jpg"]
  with Image.open(io.BytesIO(dict(PackedImages(result.folder).items())["honest.jpg"])) as kept:
    assert max(kept.size) == RESIZE


@pytest.mark.slow
def test_the_packed_source_reads_the_files_images_through_grain_workers(landmarks_mini, packed):
  files = GLDv2Source(
    landmarks_mini, non_landmark_csv="non_landmark.csv", regions_csv="landmarks.csv"
  )
  shards = GLDv2Source(
    landmarks_mini,
    non_landmark_csv="non_landmark.csv",
    regions_csv="landmarks.csv",
    packed_dir=packed,
  )
  assert list(shards.ids) == list(files.ids) and (shards.labels == files.labels).all()
  assert shards.paths is None and shards.missing == 0
  # A subset (a curriculum stage, then every other photo) keeps reading the right photos,
  # in a grain worker process (the source is pickled to it).
  stage = shards.stage_subset(0)
  picked = stage.subset(np.arange(0, len(stage), 2))
  expected = files.stage_subset(0).subset(np.arange(0, len(stage), 2))
  assert list(picked.ids) == list(expected.ids)
  for i in range(len(picked)):
    with open(expected[i]["path"], "rb") as f:
      assert picked[i]["encoded"] == f.read()
  from_workers, from_files = pipeline_images(picked, num_workers=1), pipeline_images(expected)
  assert from_workers.keys() == from_files.keys() and len(from_files) == len(picked)
  for image_id, image in from_files.items():
    np.testing.assert_array_equal(from_workers[image_id], image)


def test_photos_absent_from_the_shards_are_left_out_with_a_warning(
  landmarks_mini, tmp_path, caplog
):
  # Pack all photos but two (links to the originals).
  names = sorted(photos(landmarks_mini))
  left_out = names[:2]
  for name in names[2:]:
    (tmp_path / "images" / name).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(landmarks_mini / "images" / name, tmp_path / "images" / name)
  pack_folder(tmp_path / "images", tmp_path / "packed", progress=False)
  with caplog.at_level(logging.WARNING):
    source = GLDv2Source(
      landmarks_mini,
      csv="train.csv",
      non_landmark_csv="non_landmark.csv",
      packed_dir=tmp_path / "packed",
    )
  absent = {name.rsplit("/", 1)[1].removesuffix(".jpg") for name in left_out}
  assert source.missing == 2 and len(source) == 53
  assert not absent & set(source.ids)
  assert "2 of 55 images named in train.csv are not in the packed shards" in caplog.text


def test_source_for_reads_packed_data_with_a_config_override(landmarks_mini, packed):
  config = load_config(
    "tiny_cpu",
    [
      "data.kind=gldv2",
      f"data.root={landmarks_mini}",
      "data.non_landmark_csv=non_landmark.csv",
      f"data.packed_dir={packed}",
    ],
  )
  source = source_for(config.data)
  assert len(source) == 55 and source.paths is None
  first = source[0]
  assert (
    first["encoded"]
    == (
      landmarks_mini
      / "images"
      / first["id"][0]
      / first["id"][1]
      / first["id"][2]
      / f"{first['id']}.jpg"
    ).read_bytes()
  )
  with pytest.raises(ConfigError, match="packed_dir"):
    DataConfig(kind="folder", root=str(landmarks_mini), packed_dir=str(packed))


def test_the_packed_benchmark_times_each_source_against_the_files(landmarks_mini, packed):
  from landmark_jax.benchmarks.data_speed import benchmark_packed

  files = GLDv2Source(landmarks_mini)
  shards = GLDv2Source(landmarks_mini, packed_dir=packed)
  rows = benchmark_packed(
    files,
    {"ArrayRecord": shards},
    crop_size=32,
    resize_size=40,
    num_images=8,
    batch_size=4,
    workers=(0,),
  )
  assert [row["source"] for row in rows] == ["JPEG files", "ArrayRecord"]
  assert rows[0]["vs JPEG files"] == 1.0
  assert rows[1]["vs JPEG files"] == pytest.approx(rows[1]["images/s"] / rows[0]["images/s"])
