"""What the recognizer takes: one photo or many, of the kinds it names, with one location per
photo; misuse is a TypeError or ValueError saying what was given. And what it gives: str
landmark ids whatever the label map keeps, and `to_json` a JSON string of `to_dict`.

The checks run on NumPy inputs and a hand-built index (no model); the tests that take the
session's trained model (slow) recognise the same photo given every way."""

import json
import pathlib
import re

import numpy as np
import pytest
from PIL import Image

import landmark_jax as lj
from landmark_jax.data import GLDv2Source, LabelMap
from landmark_jax.data.config import ImageConfig
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.data.transforms import ImageDecodeError
from landmark_jax.geo import Location
from landmark_jax.index import CentroidIndex, IndexConfig
from landmark_jax.recognize import Decision, Prediction, Recognizer, decode_photo
from landmark_jax.recognize.inputs import as_location, check_photo, location_list, photo_list

CONFIG = ImageConfig()
PARIS = Location(48.8566, 2.3522)


def noise_image(shape, seed=0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# One photo or many.


@pytest.mark.parametrize(
  "photo",
  [
    "photo.jpg",
    pathlib.Path("photo.jpg"),
    b"\xff\xd8",
    Image.new("RGB", (4, 4)),
    noise_image((4, 4, 3)),
  ],
  ids=["str", "path", "bytes", "pil", "array"],
)
def test_a_str_path_bytes_pil_image_or_array_is_one_photo(photo):
  photos, one_photo = photo_list(photo)
  assert one_photo and len(photos) == 1 and photos[0] is photo


def test_a_list_tuple_or_generator_is_many_photos():
  array = noise_image((4, 4, 3))
  for many in (["a.jpg", array], ("a.jpg", array), (p for p in ["a.jpg", array])):
    photos, one_photo = photo_list(many)
    assert not one_photo and photos[0] == "a.jpg" and photos[1] is array
  assert photo_list([]) == ([], False)


@pytest.mark.parametrize(
  "shape, dtype",
  [
    ((8, 8, 3), np.float32),  # floats: 0..1 or 0..255 cannot be told apart
    ((8, 8, 3), np.int64),  # other integers would wrap above 255
    ((8, 8, 3), np.uint16),
    ((8, 8, 3), bool),
    ((0, 0, 3), np.uint8),  # no pixels
    ((8, 0, 3), np.uint8),
    ((8, 8, 2), np.uint8),  # neither gray, RGB nor RGBA
    ((8, 8, 5), np.uint8),
    ((8,), np.uint8),
    ((2, 8, 8, 3), np.uint8),  # a batch is a list of photos, not one array
  ],
)
def test_an_unusable_array_is_a_value_error_naming_its_shape_and_dtype(shape, dtype):
  array = np.zeros(shape, dtype)
  given = re.escape(f"got shape {shape}, dtype {np.dtype(dtype)}")
  with pytest.raises(
    ValueError, match=r"an array photo must be uint8 of shape \(H, W, 3\) RGB.*" + given
  ):
    check_photo(array)
  with pytest.raises(ValueError, match="photo 1: an array photo must be"):
    photo_list(["a.jpg", array])
  with pytest.raises(ValueError, match=given):
    decode_photo(array, CONFIG)


def test_a_float_array_is_told_how_to_convert():
  with pytest.raises(ValueError, match=r"dtype float64 \(scale it to 0..255 and convert it with"):
    check_photo(np.zeros((8, 8, 3)))


@pytest.mark.parametrize("value, name", [(42, "int"), (None, "NoneType"), (3.5, "float")])
def test_something_else_is_a_type_error_naming_its_type(value, name):
  accepted = r"a path \(str or os.PathLike\), encoded bytes, a PIL image or a NumPy array"
  with pytest.raises(
    TypeError, match=rf"photos must be one photo \({accepted}\) or a list of them, not {name}"
  ):
    photo_list(value)
  with pytest.raises(TypeError, match=rf"photo 1: a photo must be {accepted}, not {name}"):
    photo_list(["a.jpg", value])
  with pytest.raises(TypeError, match=rf"a photo must be {accepted}, not {name}"):
    decode_photo(value, CONFIG)


def test_a_mapping_or_a_set_of_photos_is_refused():
  with pytest.raises(TypeError, match="not dict"):
    photo_list({"a.jpg": 1})
  with pytest.raises(TypeError, match="not set"):
    photo_list({"a.jpg", "b.jpg"})


def test_an_array_of_another_library_is_told_to_convert():
  class Tensor:  # like a JAX or torch array: not a NumPy one, but convertible
    def __array__(self, dtype=None, copy=None):
      return noise_image((4, 4, 3))

  with pytest.raises(TypeError, match=r"not Tensor \(convert it with np.asarray\)"):
    check_photo(Tensor())


def test_a_single_path_names_the_whole_path_when_it_is_missing(tmp_path):
  missing = tmp_path / "photo.jpg"
  with pytest.raises(ImageDecodeError, match=f"file not found or unreadable: {missing}$"):
    decode_photo(str(missing), CONFIG)


# Grayscale and RGBA arrays: converted as files are.


def test_a_grayscale_array_is_its_gray_in_every_channel():
  gray = noise_image((40, 30))
  by_hand = np.repeat(gray[:, :, None], 3, axis=2)
  np.testing.assert_array_equal(
    decode_photo(gray, CONFIG).pixels, decode_photo(by_hand, CONFIG).pixels
  )


def test_an_rgba_array_is_composited_over_white():
  rgb = noise_image((40, 30, 3))
  alpha = np.full((40, 30, 1), 255, np.uint8)
  alpha[:20] = 0  # the top half transparent
  by_hand = rgb.copy()
  by_hand[:20] = 255  # white where transparent, the colour itself where opaque
  photo = decode_photo(np.concatenate([rgb, alpha], axis=2), CONFIG)
  np.testing.assert_array_equal(photo.pixels, decode_photo(by_hand, CONFIG).pixels)
  assert not np.array_equal(photo.pixels, decode_photo(rgb, CONFIG).pixels)  # alpha used


def test_a_png_path_bytes_pil_image_and_array_decode_to_the_same_pixels(tmp_path):
  path = tmp_path / "photo.png"
  Image.fromarray(noise_image((50, 70, 3))).save(path)
  with Image.open(path) as image:
    image.load()
  given = [str(path), path, path.read_bytes(), image, np.asarray(image)]
  pixels = [decode_photo(photo, CONFIG).pixels for photo in given]
  for other in pixels[1:]:
    np.testing.assert_array_equal(other, pixels[0])


# Locations.


def test_a_pair_of_numbers_is_a_location():
  assert as_location((48.8566, 2.3522)) == PARIS
  assert as_location([48.8566, 2.3522]) == PARIS
  assert as_location(np.array([48.8566, 2.3522])) == PARIS
  assert as_location(PARIS) == PARIS and isinstance(as_location((1, 2)), Location)
  assert as_location(None) is None


@pytest.mark.parametrize(
  "value, message",
  [
    ((91.0, 0.0), r"latitude 91.0 is outside \[-90, 90\]"),
    ((-90.5, 0.0), r"latitude -90.5 is outside \[-90, 90\]"),
    ((0.0, 180.5), r"longitude 180.5 is outside \[-180, 180\]"),
    ((float("nan"), 0.0), r"latitude nan is outside"),
    (Location(0.0, -200.0), r"longitude -200.0 is outside"),
  ],
)
def test_a_location_off_the_earth_is_a_value_error(value, message):
  with pytest.raises(ValueError, match=message):
    as_location(value)


@pytest.mark.parametrize(
  "value, message",
  [
    ((48.8,), r"not \(48.8,\)"),
    ((1.0, 2.0, 3.0), r"not \(1.0, 2.0, 3.0\)"),
    ("48.8,2.3", "not '48.8,2.3'"),
    (("48.8", "2.3"), "got a str in it"),
    ((True, 2.0), "got a bool in it"),
  ],
)
def test_something_else_as_a_location_is_a_type_error(value, message):
  kinds = r"a location must be a Location, a \(latitude, longitude\) pair of numbers, or None"
  with pytest.raises(TypeError, match=kinds + ".*" + message):
    as_location(value)


def test_many_photos_take_one_location_per_photo():
  assert location_list(None, 3) == [None] * 3
  assert location_list([(48.8566, 2.3522), None], 2) == [PARIS, None]
  assert location_list((48.8566, 2.3522), 1, one_photo=True) == [PARIS]
  with pytest.raises(
    ValueError, match=r"3 photos but 2 locations: give one location \(or None\) per photo"
  ):
    location_list([PARIS, None], 3)
  with pytest.raises(ValueError, match=r"location 1: latitude 95.0 is outside"):
    location_list([PARIS, (95.0, 0.0)], 2)
  # One place for several photos is an easy slip: it is not read as two locations.
  with pytest.raises(
    TypeError, match=r"give 2 photos a list of locations, one per photo \(\[location\] \* 2"
  ):
    location_list(PARIS, 2)
  with pytest.raises(TypeError, match=r"give 2 photos a list of locations"):
    location_list((48.8, 2.3), 2)


def test_location_is_exported_at_the_top_level():
  assert lj.Location is Location and "Location" in lj.__all__


# Answers: str landmark ids, and JSON.


def hand_decision(label_map=LabelMap((0, 1, "sacre_coeur")), **kwargs) -> Decision:
  """Three landmarks at the first three axes of R^8 (labels 0, 1, 2), exact search."""
  index = CentroidIndex.build(
    np.eye(8, dtype=np.float32)[:3], [0, 1, 2], IndexConfig(backend="exact"), label_map=label_map
  )
  return Decision(index, eta=0.5, top_k=3, **kwargs)


def test_a_mixed_label_map_gives_str_landmark_ids_everywhere():
  decision = hand_decision(names={0: "zero", "sacre_coeur": "Sacré-Cœur"})
  answers = decision.predict(np.eye(8, dtype=np.float32)[:3])
  assert [a.landmark_id for a in answers] == ["0", "1", "sacre_coeur"]
  assert [a.name for a in answers] == ["zero", None, "Sacré-Cœur"]  # int or str keys
  for answer in answers:
    assert all(type(c.landmark_id) is str for c in answer.candidates)
    assert sorted(c.landmark_id for c in answer.candidates) == ["0", "1", "sacre_coeur"]
    as_sent = json.loads(answer.to_json())
    assert type(as_sent["landmark_id"]) is str
    assert all(type(c["landmark_id"]) is str for c in as_sent["candidates"])
  # Back to the label map's own ids (what training, the index and evaluation keep).
  assert [decision.label_map_id(a.landmark_id) for a in answers] == [0, 1, "sacre_coeur"]
  # A rejected photo has no landmark: None, not "None".
  rejected = decision.predict(np.eye(8, dtype=np.float32)[3:4])[0]
  assert rejected.landmark_id is None and json.loads(rejected.to_json())["landmark_id"] is None


def test_names_keyed_by_the_ids_text_are_found_too():
  assert (
    hand_decision(names={"1": "one"}).predict(np.eye(8, dtype=np.float32)[1:2])[0].name == "one"
  )


def test_a_label_map_whose_ids_read_the_same_is_refused():
  with pytest.raises(ValueError, match=r"landmark ids 3 and '3' both read '3' in answers"):
    hand_decision(LabelMap((3, "3", "x")))


def test_to_json_is_a_json_string_of_to_dict():
  answer = hand_decision().predict(np.eye(8, dtype=np.float32)[:1], locations=[PARIS])[0]
  assert isinstance(answer, Prediction) and isinstance(answer.to_json(), str)
  assert json.loads(answer.to_json()) == answer.to_dict()
  assert answer.to_dict()["landmark_id"] == "0"
  assert answer.to_dict()["location"] == {"latitude": 48.8566, "longitude": 2.3522}


def test_the_decision_takes_a_pair_as_a_location():
  decision = hand_decision()
  embeddings = np.eye(8, dtype=np.float32)[:2]
  as_pairs = decision.predict(embeddings, locations=[(48.8566, 2.3522), None])
  assert as_pairs == decision.predict(embeddings, locations=[PARIS, None])
  assert as_pairs[0].location == PARIS and type(as_pairs[0].location) is Location
  with pytest.raises(ValueError, match="2 photos but 1 locations"):
    decision.predict(embeddings, locations=[PARIS])


# The recognizer, end to end (the session's trained model: slow).


@pytest.fixture(scope="module")
def recognizer(trained, index_dir):
  return Recognizer(trained, CentroidIndex.load(index_dir / "index"))


@pytest.fixture(scope="module")
def png_photo(tmp_path_factory) -> pathlib.Path:
  """A demo test photo as PNG (no JPEG draft decoding: every form gives the same pixels)."""
  path = tmp_path_factory.mktemp("photo") / "photo.png"
  with Image.open(GLDv2Source(demo_dataset(), csv="test.csv").paths[0]) as image:
    image.convert("RGB").save(path)
  return path


def test_every_form_of_one_photo_gives_the_same_single_prediction(recognizer, png_photo):
  with Image.open(png_photo) as image:
    image.load()
  forms = [str(png_photo), png_photo, png_photo.read_bytes(), image, np.asarray(image)]
  answers = [recognizer.recognize(form, use_exif=False) for form in forms]
  assert all(isinstance(a, Prediction) for a in answers)
  assert {(a.landmark_id, a.score) for a in answers} == {(answers[0].landmark_id, answers[0].score)}
  assert type(answers[0].candidates[0].landmark_id) is str
  # A list (or tuple) gives a list, the same answers in order.
  assert recognizer.recognize(forms, use_exif=False) == answers
  assert recognizer.recognize(tuple(forms[:2]), use_exif=False) == answers[:2]
  # The embedder's own entry points follow the same rule.
  one, many = recognizer.photos.embed(forms[0]), recognizer.photos.embed(forms[:2])
  assert one.shape == (recognizer.index.dim,) and many.shape == (2, recognizer.index.dim)
  np.testing.assert_array_equal(one, many[0])
  photo = recognizer.photos.decode(forms[0])
  assert recognizer.recognize_photos(photo) == answers[0]
  assert recognizer.recognize_photos([photo]) == [answers[0]]
  # A single path to recognize_files is one file, not its characters.
  assert list(recognizer.recognize_files(str(png_photo), use_exif=False)) == [
    (str(png_photo), answers[0])
  ]


def test_gray_and_rgba_arrays_are_recognised_as_their_rgb(recognizer, png_photo):
  with Image.open(png_photo) as image:
    rgb = np.asarray(image.convert("RGB"))
  gray = np.asarray(Image.fromarray(rgb).convert("L"))
  rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
  rgba[: len(rgb) // 2, :, 3] = 0  # top half transparent: white, as a file's would be
  white_top = rgb.copy()
  white_top[: len(rgb) // 2] = 255
  got = recognizer.recognize([gray, rgba])
  expected = recognizer.recognize([np.repeat(gray[:, :, None], 3, axis=2), white_top])
  assert [(a.landmark_id, a.score) for a in got] == [(a.landmark_id, a.score) for a in expected]


def test_a_pair_locates_a_photo_as_a_location_does(recognizer, png_photo):
  as_pair = recognizer.recognize(png_photo, (48.8566, 2.3522))
  assert as_pair == recognizer.recognize(png_photo, PARIS)
  assert as_pair.location == PARIS and as_pair.radius_km == recognizer.decision.radius_km
  assert recognizer.recognize([png_photo, png_photo], [(48.8566, 2.3522), None])[0] == as_pair


def test_misuse_is_refused_before_anything_is_decoded(recognizer, png_photo):
  with pytest.raises(ValueError, match=r"photo 1: an array photo must be .*dtype float32"):
    recognizer.recognize([png_photo, np.zeros((8, 8, 3), np.float32)])
  with pytest.raises(ValueError, match=r"got shape \(0, 0, 3\), dtype uint8"):
    recognizer.recognize(np.zeros((0, 0, 3), np.uint8))
  with pytest.raises(TypeError, match="not int"):
    recognizer.recognize(7)
  with pytest.raises(ValueError, match="2 photos but 1 locations"):
    recognizer.recognize([png_photo, png_photo], [PARIS])
  with pytest.raises(ValueError, match=r"latitude 100.0 is outside \[-90, 90\]"):
    recognizer.recognize(png_photo, (100.0, 0.0))
  with pytest.raises(TypeError, match="photo 0: a photo file is a str or os.PathLike, not bytes"):
    recognizer.recognize_files([png_photo.read_bytes()])
  with pytest.raises(TypeError, match="a decoded photo must be a Photo, not str"):
    recognizer.recognize_photos([str(png_photo)])
