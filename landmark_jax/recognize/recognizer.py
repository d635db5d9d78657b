"""The front door of inference: photos → `Prediction`s.

One path serves every caller (the Python API, the CLI, the HTTP service):

    decode_photo      a path, bytes, PIL image or array → `Photo` (the eval crop and the EXIF
                      GPS location, from one decode of the file)
    PhotoEmbedder     crops → unit embeddings, padded to a few batch-size buckets, so the
                      forward pass compiles once per bucket
    Decision          embeddings → nearest centroids → landmark or "no landmark" (η, ρ),
                      with candidates restricted around the photo's location when it has one

Evaluation and calibration embed a source once (`PhotoEmbedder.embed_source`) and score it
with a `Decision` alone; η is chosen by `landmark_jax.eval.calibration` and stored with the
index.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterator, Sequence

from landmark_jax.data.labels import LabelMap
from landmark_jax.data.transforms import ImageDecodeError
from landmark_jax.geo import Location
from landmark_jax.index.centroid_index import CentroidIndex
from landmark_jax.index.provenance import check_same_model, same_model
from landmark_jax.index.verify_rule import VerifyBand, stored_band
from landmark_jax.recognize.decision import Decision, Prediction
from landmark_jax.recognize.embedder import PhotoEmbedder
from landmark_jax.recognize.inputs import decoded_list, location_list, path_list
from landmark_jax.recognize.photos import Photo, decode_photo, file_problem
from landmark_jax.train.checkpoints import TrainedModel, load_trained

logger = logging.getLogger(__name__)


def _extends(index_map: LabelMap, model_map: LabelMap) -> bool:
  """Whether `index_map` gives every label of `model_map` the same landmark, new landmarks
  (`add-landmarks`) appended after them. Stage sizes and the non-landmark label (n, which
  moves up as landmarks are appended) do not change what a landmark label means."""
  model_ids = tuple(model_map.landmark_ids)  # a map built from a list compares equal too
  return tuple(index_map.landmark_ids[: len(model_ids)]) == model_ids


_warned_model_pairs: set = set()


def _warn_if_another_model(built_from: str | None, checkpoint_id: str) -> None:
  """Warns (once per pair) when the index's centroids come from another model's embeddings
  (`provenance.same_model`): they then score nothing meaningful. `Recognizer.load` refuses
  such a pair unless told otherwise; a recognizer made from loaded parts warns."""
  if not built_from:
    return
  if same_model(built_from, checkpoint_id) or (built_from, checkpoint_id) in _warned_model_pairs:
    return
  _warned_model_pairs.add((built_from, checkpoint_id))
  logger.warning(
    "the index was built from the embeddings of %s, and this model is %s: unless "
    "they are the same model, its scores mean nothing (a demo workdir has "
    "round1/train and train: the index is train's)",
    built_from,
    checkpoint_id,
  )


def can_verify(index: CentroidIndex) -> bool:
  """Whether `index` holds what verification needs: local features and a calibrated band."""
  return getattr(index, "local_features", None) is not None and (
    stored_band(index.metadata) is not None
  )


class Recognizer:
  """Photos → predictions: a trained model's photo embedder (`photos`, batched on the device)
  in front of an index's decision (`decision`, device-free).

  Args:
    eta: the similarity threshold; default: the index's calibrated ``eta`` (if the index was
      never calibrated, every photo gets its nearest landmark, and a warning says so).
    top_k: landmarks returned as candidates.
    batch_size: the most images per device call; smaller calls are padded to the next power
      of two (`buckets` overrides), so a few compiled programs serve all calls.
    names: landmark id → name, returned with predictions (default: the index's landmarks.csv).
    radius_km: with a photo location, only landmarks within this great-circle distance stay
      candidates (landmarks without coordinates always stay).
    reference_threshold: ρ, the similarity to one of its landmark's reference photos that
      the best candidate must also reach (class references, kept by the index); default:
      the index's calibrated ``reference_threshold`` (the index's ``eta`` is the one
      calibrated with it); None there, or -inf: not checked (and the default η is the one
      calibrated alone, ``eta_without_references``). A
      landmark without reference photos is never rejected by it.
    verify: local-feature verification of the answers whose score falls in the band around
      η (`recognize.verifier`): None (default) verifies when the index stores local features
      and a calibrated band (`landmark-jax local-features`, then `calibrate
      --verify-budget`), True requires them (`UsageError` naming the missing step), False
      never verifies: the centroid answers, exactly as without them.
    verify_band: the band and k to verify with instead of the index's calibrated ones.
  """

  def __init__(
    self,
    trained: TrainedModel,
    index: CentroidIndex,
    *,
    eta: float | None = None,
    top_k: int = 5,
    batch_size: int = 8,
    names: dict | None = None,
    buckets: Sequence[int] | None = None,
    radius_km: float = 50.0,
    reference_threshold: float | None = None,
    verify: bool | None = None,
    verify_band: VerifyBand | None = None,
  ):
    if index.dim != trained.model.embedding_dim:
      raise ValueError(
        f"index dimension {index.dim} ≠ model embedding {trained.model.embedding_dim}"
      )
    if index.label_map is not None and not _extends(index.label_map, trained.label_map):
      # An index with added landmarks extends the model's map: that is normal, and silent.
      logger.warning("index and model label maps differ; using the index's for its labels")
    _warn_if_another_model(index.metadata.get("checkpoint"), trained.checkpoint_id)
    self.trained = trained
    self.photos = PhotoEmbedder(trained, batch_size, buckets)
    self.decision = Decision(
      index,
      label_map=index.label_map or trained.label_map,
      eta=eta,
      reference_threshold=reference_threshold,
      top_k=top_k,
      radius_km=radius_km,
      names=names,
    )
    self.verifier = None
    if verify or (verify is None and can_verify(index)):
      # Imported here: the local-feature extractor and RANSAC cost a recognizer without
      # verification nothing, not even their import.
      from landmark_jax.recognize.verifier import Verifier

      self.verifier = Verifier(trained, self.decision, verify_band)

  @classmethod
  def load(
    cls,
    checkpoint: str | os.PathLike,
    index: str | os.PathLike | None = None,
    *,
    allow_other_model: bool = False,
    **kwargs,
  ) -> "Recognizer":
    """The recognizer of a training workdir and an index folder, or of one inference
    bundle folder (`landmark-jax export`; every file checked against its manifest first)
    (`kwargs`: the constructor's). Raises `OtherModelError` when the index was built from
    another model's embeddings, unless `allow_other_model` (the user knows them to be the
    same model; a warning still says so)."""
    if index is None:
      from landmark_jax.bundle import load_bundle

      trained, index = load_bundle(checkpoint)
    else:
      trained = load_trained(checkpoint)
    loaded = CentroidIndex.load(index, expected_dim=trained.model.embedding_dim)
    check_same_model(
      loaded.metadata.get("checkpoint"),
      trained.checkpoint_id,
      allow_other_model=allow_other_model,
      index=index,
    )
    return cls(trained, loaded, **kwargs)

  @property
  def index(self) -> CentroidIndex:
    return self.decision.index

  @property
  def eta(self) -> float:
    """The threshold η the decision applies: by default the index's ``eta``, which is the
    one calibrated with ρ when the decision checks ρ too (`decision.reference_threshold`)."""
    return self.decision.eta

  def recognize_photos(
    self, photos: Photo | Sequence[Photo], *, eta: float | None = None, use_locations: bool = True
  ) -> Prediction | list[Prediction]:
    """One decoded `Photo` → its prediction; a list of them → a list. Each photo's location
    (if any, and `use_locations`) restricts its candidates to nearby landmarks."""
    photos, one_photo = decoded_list(photos, Photo)
    locations = [photo.location for photo in photos] if use_locations else None
    predictions = self.decision.predict(
      self.photos.embed_photos(photos), eta=eta, locations=locations
    )
    if self.verifier is not None:
      predictions = self.verifier.apply([photo.source for photo in photos], predictions, eta)
    return predictions[0] if one_photo else predictions

  def recognize(
    self, images: Any, locations: Any = None, *, use_exif: bool = True
  ) -> Prediction | list[Prediction]:
    """One photo → its `Prediction`; a list (or tuple, or other ordered iterable) of
    photos → a list of predictions, in order.

    A photo is a path (str or os.PathLike), encoded bytes, a PIL image or a uint8 NumPy
    array of shape (H, W, 3) RGB, (H, W) grayscale or (H, W, 4) RGBA (over white).
    A photo's location is the one passed for it — for one photo a `Location` or a
    ``(latitude, longitude)`` pair, for a list one of those (or None) per photo — else
    (with `use_exif`) its EXIF GPS position, else unknown, and then it is recognised as
    always.

    Raises:
      TypeError, ValueError: a photo or location of a kind not accepted, an unusable array
        (float, another integer dtype, the wrong shape, no pixels), a latitude or
        longitude out of range, or not one location per photo; checked before anything is
        decoded.
      ImageDecodeError: naming the first unreadable photo.
    """
    photos = self.photos.decode(images, locations, read_exif=use_exif)
    return self.recognize_photos(photos)

  def recognize_files(
    self,
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    locations: Any = None,
    *,
    use_exif: bool = True,
  ) -> Iterator[tuple[str, Prediction | str]]:
    """Each photo file's prediction, or what makes it no readable photo, in words:
    ``(path, Prediction or str)`` in the paths' order (one path: one pair). Locations as
    `recognize`. One device call per `batch_size` photos, not per photo; a missing,
    unreadable or damaged file is answered and the others are still recognised."""
    paths, one_photo = path_list(paths)
    locations = location_list(locations, len(paths), one_photo=one_photo)
    return self._recognize_files(paths, locations, use_exif)

  def _recognize_files(
    self, paths: list, locations: list[Location | None], use_exif: bool
  ) -> Iterator[tuple[str, Prediction | str]]:
    # Apart from `recognize_files`, so that its arguments are checked when it is called,
    # not when the first answer is asked for.
    step = self.photos.batch_size
    for first in range(0, len(paths), step):
      decoded = [
        (path, self._decode_file(path, location, use_exif))
        for path, location in zip(paths[first : first + step], locations[first : first + step])
      ]
      photos = [photo for _, photo in decoded if isinstance(photo, Photo)]
      predictions = iter(self.recognize_photos(photos) if photos else ())
      for path, photo in decoded:
        yield path, next(predictions) if isinstance(photo, Photo) else photo

  def _decode_file(self, path: str, location: Location | None, read_exif: bool) -> Photo | str:
    problem = file_problem(path)
    if problem is not None:
      return problem
    try:
      return decode_photo(path, self.photos.image_config, location=location, read_exif=read_exif)
    except ImageDecodeError as e:
      return str(e)
