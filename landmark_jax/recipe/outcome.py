"""What process 0 prints at the end: the report's table, where everything is, the time each
step took (kept in ``recipe/timings.json`` across attempts), and the commands that use the
result."""

from __future__ import annotations

import json
import shlex

from landmark_jax.fit import next_commands
from landmark_jax.recipe.layout import Layout
from landmark_jax.recipe.steps import read_json


def record_timings(layout: Layout, timings: dict[str, float]) -> dict[str, float]:
  """This attempt's seconds per step, added to the earlier attempts' (a resumed step adds
  its time to the part done before the stop)."""
  path = layout.own / "timings.json"
  total = read_json(path) or {}
  for step, seconds in timings.items():
    total[step] = total.get(step, 0.0) + seconds
  layout.own.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(total, indent=2))
  return total


def print_outcome(layout: Layout, total: dict[str, float], exported: bool) -> None:
  """`total`: every attempt's seconds per step (`record_timings`)."""
  report = layout.report / "report.md"
  print("\n" + report.read_text().split("![")[0].rstrip())
  print(f"\nReport: {report}")
  cleanings = (layout.round_dir(r) / "clean" / "report.md" for r in (1, 2))
  print(f"Cleaning: {', '.join(map(str, cleanings))}")
  print(
    f"Steps took {sum(total.values()):.0f} s in all ("
    + ", ".join(f"{step} {seconds:.0f} s" for step, seconds in total.items())
    + f"; {layout.own / 'timings.json'})"
  )
  print("\nRecognise a photo, or serve the recognizer:")
  for line in next_commands(layout.workdir):
    print(f"  {line}")
  if exported:
    print(f"  landmark-jax serve --bundle {shlex.quote(str(layout.bundle))}")
