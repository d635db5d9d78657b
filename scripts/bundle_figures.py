"""The inference bundle against the workdir and index it was exported from: size on disk,
load time and answers (docs/benchmarks.md, "The inference bundle (`landmark-jax export`)").

    landmark-jax demo --workdir /tmp/bundle-demo
    python scripts/bundle_figures.py --checkpoint /tmp/bundle-demo/train \
        --index /tmp/bundle-demo/index [--repeats 5]

Exports two bundles into a temporary folder (without and with --jax-export). Load time:
`Recognizer.load` run `--repeats` times in one fresh process per case, after the imports;
the median and the first. Answers: every test photo of the model's data
(`source_for(config.data, "test")`) recognised by both recognizers in this process; the
scores must be bitwise equal and the answers the same. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

TIMER = """
import json, statistics, sys, time
from landmark_jax import Recognizer
from landmark_jax.bundle import load_bundle  # the imports are not what is timed
times = []
for _ in range(int(sys.argv[1])):
  start = time.perf_counter()
  Recognizer.load(*sys.argv[2:])
  times.append(time.perf_counter() - start)
print(json.dumps({"median": statistics.median(times), "first": times[0]}))
"""


def folder_bytes(folder: pathlib.Path) -> tuple[int, int]:
  files = [p for p in folder.rglob("*") if p.is_file()]
  return sum(p.stat().st_size for p in files), len(files)


def load_seconds(repeats: int, *paths) -> dict:
  done = subprocess.run(
    [sys.executable, "-c", TIMER, str(repeats), *map(str, paths)],
    capture_output=True,
    text=True,
    check=True,
  )
  return json.loads(done.stdout.splitlines()[-1])


def same_answers(checkpoint, index, bundle) -> tuple[int, bool, bool]:
  """(photos, scores bitwise equal, answers equal) on the model's test photos."""
  from landmark_jax import Recognizer
  from landmark_jax.data import source_for

  from_bundle, from_workdir = Recognizer.load(bundle), Recognizer.load(checkpoint, index)
  trained = from_workdir.trained
  paths = [str(p) for p in source_for(trained.config.data, "test", trained.label_map).paths]
  answers = [[a for _, a in r.recognize_files(paths)] for r in (from_bundle, from_workdir)]
  scores = [np.asarray([[c.score for c in a.candidates] for a in ans]) for ans in answers]
  bitwise = scores[0].tobytes() == scores[1].tobytes()
  equal = [a.to_dict() for a in answers[0]] == [a.to_dict() for a in answers[1]]
  return len(paths), bitwise, equal


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--checkpoint", required=True)
  parser.add_argument("--index", required=True)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  from landmark_jax.bundle import export_bundle

  checkpoint, index = pathlib.Path(args.checkpoint), pathlib.Path(args.index)
  with tempfile.TemporaryDirectory() as tmp:
    plain = export_bundle(checkpoint, index, pathlib.Path(tmp) / "bundle").path
    program = export_bundle(checkpoint, index, pathlib.Path(tmp) / "jax", jax_export=True).path
    workdir, index_size = folder_bytes(checkpoint), folder_bytes(index)
    checkpoints = folder_bytes(checkpoint / "checkpoints")
    rows = [
      ("workdir (all of it) + index", workdir[0] + index_size[0], workdir[1] + index_size[1]),
      ("  of which checkpoints/ (every kept step)", *checkpoints),
      ("  of which the index", *index_size),
      ("bundle", *folder_bytes(plain)),
      ("bundle with --jax-export", *folder_bytes(program)),
    ]
    print("| folder | MiB | files |\n|---|---|---|")
    for name, size, count in rows:
      print(f"| {name} | {size / 2**20:.2f} | {count} |")
    times = {
      "workdir + index": load_seconds(args.repeats, checkpoint, index),
      "bundle": load_seconds(args.repeats, plain),
    }
    print(f"\n| `Recognizer.load` | median of {args.repeats} (s) | first (s) |\n|---|---|---|")
    for name, seconds in times.items():
      print(f"| {name} | {seconds['median']:.3f} | {seconds['first']:.3f} |")
    photos, bitwise, equal = same_answers(checkpoint, index, plain)
    print(
      f"\nanswers on {photos} test photos: candidate scores bitwise equal: {bitwise}; "
      f"predictions equal: {equal}"
    )


if __name__ == "__main__":
  main()
