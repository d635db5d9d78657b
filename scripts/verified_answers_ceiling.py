"""How far verified answers can go on the demo: the band and k chosen on the validation photos
(as `calibrate` does) against the same rule chosen on the test photos themselves (a ceiling
no calibration can beat), for several numbers of stored photos per landmark and verified
candidates.

    landmark-jax demo --workdir W/seed-0 seed=0          # and seeds 1, 2
    .venv/bin/python scripts/verified_answers_ceiling.py W/seed-0 W/seed-1 W/seed-2

Per seed: builds the DELF-style database (the demo preset, trained attention) with the
seed's model, and for every validation and test photo records its centroid score, its 3
best candidates and the RANSAC inliers against every database photo of each. The stored
photos per landmark are then any R of them, chosen as `local-features` chooses (the photos
nearest the landmark's centroids; here the database's mean direction), so every R is
measured from one pass. Prints sensitivity / specificity / share verified, mean of seeds.
"""

import sys

import numpy as np

from landmark_jax.baselines.delf import build_delf, calibrate_min_inliers
from landmark_jax.baselines.delf.verification import verify_with
from landmark_jax.data import GLDv2Source, source_for
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.data.transforms import record_data
from landmark_jax.eval.verify_calibration import choose_band
from landmark_jax.index import CentroidIndex
from landmark_jax.index.verify_rule import VerifyBand, in_band
from landmark_jax.recognize.decision import Decision, public_landmark_id
from landmark_jax.recognize.embedder import PhotoEmbedder
from landmark_jax.recognize.photos import decode_photo
from landmark_jax.train.checkpoints import load_trained

CANDIDATES = 3


def collect(workdir: str) -> dict:
  trained = load_trained(f"{workdir}/train")
  index = CentroidIndex.load(f"{workdir}/index")
  splits = {
    name: GLDv2Source(demo_dataset(), csv=f"{name}.csv", label_map=trained.label_map)
    for name in ("val", "test")
  }
  config = trained.config.delf
  train = source_for(trained.config.data, "train", trained.label_map)
  delf = build_delf(trained, train, config, progress=False)
  delf = delf.with_min_inliers(calibrate_min_inliers(delf, splits["val"], 0.95)["min_inliers"])
  database = delf.database
  embedder = PhotoEmbedder(trained, batch_size=1)
  owners = [public_landmark_id(l) for l in database.landmark_ids]
  position = {str(i): k for k, i in enumerate(train.ids)}
  photos = embedder.embed_arrays(
    np.stack(
      [
        decode_photo(record_data(train[position[str(i)]]), embedder.image_config).pixels
        for i in database.image_ids
      ]
    )
  )
  ranked = {}  # landmark → its database photos, nearest its mean direction first
  for landmark in set(owners):
    rows = [k for k, owner in enumerate(owners) if owner == landmark]
    mean = photos[rows].mean(0)
    ranked[landmark] = [rows[i] for i in np.argsort(-(photos[rows] @ mean))]
  decision = Decision(index, label_map=index.label_map or trained.label_map)
  out = {"eta": decision.eta}
  for name, source in splits.items():
    truth, records = source.landmark_ids(), []
    for i in range(len(source)):
      data = record_data(source[i])
      crop = decode_photo(data, embedder.image_config, read_exif=False).pixels[None]
      (prediction,) = decision.predict(embedder.embed_arrays(crop))
      pixels, hw = delf.extractor.prepare(data)
      (features,) = delf.extractor.extract_prepared(pixels[None], np.array([hw]))
      inliers = {
        c.landmark_id: [
          verify_with(features, database.photo_features(k), config).inliers
          for k in ranked[c.landmark_id]
        ]
        for c in prediction.candidates[:CANDIDATES]
      }
      none = source.labels[i] == source.label_map.non_landmark_label
      delf_answer = delf.predict_features(features).landmark_id
      records.append(
        {
          "truth": None if none else public_landmark_id(truth[i]),
          "score": prediction.score,
          "answer": prediction.landmark_id,
          "candidates": [c.landmark_id for c in prediction.candidates[:CANDIDATES]],
          "inliers": inliers,
          "delf": public_landmark_id(delf_answer),
        }
      )
    out[name] = records
  return out


def arrays(records, per_landmark, candidates):
  scores = np.array([r["score"] for r in records], np.float32)
  base = np.array([r["answer"] is not None for r in records])
  right = np.array([r["answer"] is not None and r["answer"] == r["truth"] for r in records])
  inliers = np.full((len(records), candidates), -1)
  correct = np.zeros((len(records), candidates), bool)
  for i, r in enumerate(records):
    for j, c in enumerate(r["candidates"][:candidates]):
      inliers[i, j] = max(r["inliers"][c][:per_landmark])
      correct[i, j] = c == r["truth"]
  none = np.array([r["truth"] is None for r in records])
  return scores, base, right, inliers, correct, none


def rates(records, eta, band, per_landmark, candidates):
  scores, base, right, inliers, correct, none = arrays(records, per_landmark, candidates)
  verified = in_band(scores, eta, band)
  reach = inliers >= band.min_inliers
  first = reach.argmax(1)
  accept = np.where(verified, reach.any(1), base)
  hit = np.where(verified, reach.any(1) & correct[np.arange(len(scores)), first], base & right)
  return np.array([(accept & hit)[~none].mean(), (~accept)[none].mean(), verified.mean()])


def chosen_on(records, eta, per_landmark, candidates, budget):
  scores, base, right, inliers, correct, none = arrays(records, per_landmark, candidates)
  found = choose_band(
    scores, eta, base, right, np.ones(len(scores), bool), inliers, correct, none, 0.95, budget
  )
  return VerifyBand(found["below"], found["above"], found["min_inliers"], candidates)


def main(workdirs):
  runs = [collect(w) for w in workdirs]
  delf = np.mean(
    [
      [
        np.mean([r["delf"] == r["truth"] for r in run["test"] if r["truth"] is not None]),
        np.mean([r["delf"] is None for r in run["test"] if r["truth"] is None]),
      ]
      for run in runs
    ],
    0,
  )
  print(f"DELF-style: sensitivity {delf[0]:.3f}, specificity {delf[1]:.3f}")
  print("R  C  budget  calibrated on validation      chosen on test (ceiling)")
  for per_landmark in (2, 4, 8, 16):
    for candidates in (1, 2, 3):
      for budget in (0.3, 1.0):
        row = []
        for tuned_on in ("val", "test"):
          figures = [
            rates(
              run["test"],
              run["eta"],
              chosen_on(run[tuned_on], run["eta"], per_landmark, candidates, budget),
              per_landmark,
              candidates,
            )
            for run in runs
          ]
          s, p, v = np.mean(figures, 0)
          row.append(f"{s:.3f} / {p:.3f} ({v:.0%} verified)")
        print(f"{per_landmark:<2} {candidates}  {budget:<6}  {row[0]:<28}  {row[1]}")


if __name__ == "__main__":
  main(sys.argv[1:])
