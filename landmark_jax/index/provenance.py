"""Which model's embeddings an index holds: its manifest's ``checkpoint``, compared with the
model about to score photos against its centroids. Another model's embeddings live in
another space, where every score means nothing, so that pairing is refused unless the user
says the two are the same model (docs/decisions.md, "Answers and the command line")."""

from __future__ import annotations

import os
import pathlib

from landmark_jax.errors import UserError


class OtherModelError(UserError, ValueError):
  """An index built from another model's embeddings than the model given."""


def same_model(built_from: str, checkpoint_id: str) -> bool:
  """Whether two checkpoint ids (``<workdir>@<step>``) name one model. A copied or moved
  workdir keeps its folder name and step, so only those are compared: a demo's
  round1/train@343 and train@340 differ; two runs that stopped at the same step in folders
  of the same name are not told apart."""

  def short(checkpoint: str) -> tuple[str, str]:
    folder, _, step = checkpoint.rpartition("@")
    return pathlib.PurePath(folder).name, step

  return short(built_from) == short(checkpoint_id)


def check_same_model(
  built_from: str | None,
  checkpoint_id: str,
  *,
  allow_other_model: bool = False,
  index: str | os.PathLike = "",
) -> None:
  """Raises `OtherModelError` when the index (at `index`, for the message) was built from
  another model's embeddings than `checkpoint_id`'s, unless `allow_other_model`. An index
  that does not record its model (`built_from` None) passes: nothing can be told."""
  if allow_other_model or not built_from or same_model(built_from, checkpoint_id):
    return
  raise OtherModelError(
    f"the index{f' {index}' if index else ''} was built from the embeddings of "
    f"{built_from}, and this model is {checkpoint_id}: its scores against another "
    "model's centroids mean nothing. Use the index built from this model (a demo workdir "
    "has round1/train and train: the index is train's), or pass --allow-other-model if "
    "the two are the same model"
  )
