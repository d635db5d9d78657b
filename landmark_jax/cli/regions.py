"""``landmark-jax regions``: the curriculum's regions CSV from landmarks' coordinates or
country codes."""

from __future__ import annotations

import pathlib

from landmark_jax.errors import UsageError


def _regions(args) -> int:
  from landmark_jax.data.region_assignment import assign_regions, write_regions_csv

  source, out = pathlib.Path(args.landmarks_csv), pathlib.Path(args.out)
  if out.resolve() == source.resolve():
    raise UsageError(f"--out {out} is the landmarks CSV itself: write the regions elsewhere")
  assignments = assign_regions(source, by=args.by, default_region=args.default_region)
  write_regions_csv(assignments, out)

  counts = {region: sum(a.region == region for a in assignments) for region in REGIONS}
  sources = {
    s: sum(a.source == s for a in assignments) for s in ("country", "coordinates", "default")
  }
  decided = ", ".join(
    f"{n} by {'default region' if s == 'default' else s}" for s, n in sources.items() if n
  )
  print(f"{len(assignments)} landmark{'s' * (len(assignments) != 1)} ({decided}) → {out}")
  width = max(map(len, REGIONS))
  for stage, region in enumerate(REGIONS, 1):
    print(f"  {stage}. {region:<{width}}  {counts[region]}")
  disagreeing = [a for a in assignments if a.disagrees]
  if disagreeing:
    shown = ", ".join(
      f"{a.landmark_id} (line {a.line}: coordinates in {a.coordinates_region})"
      for a in disagreeing[:5]
    )
    print(
      f"{len(disagreeing)} landmark(s) have coordinates in another region than their "
      f"country code, which was used: {shown}{', …' if len(disagreeing) > 5 else ''}"
    )
  return 0


# = landmark_jax.data.labels.REGIONS, written out: importing the data package loads grain,
# seconds that every command's parsing would pay (a test checks the two agree).
REGIONS = ("europe_russia", "north_america_oceania", "middle_east_north_africa", "far_east")


def register(commands, debug) -> None:
  regions = commands.add_parser(
    "regions",
    parents=[debug],
    help="write the curriculum's landmark_id,region CSV (data.regions_csv) from the "
    "landmarks' coordinates or ISO country codes",
    description="Assigns each landmark one of the paper's four curriculum parts, in "
    f"training order: {', '.join(REGIONS)}. Boundaries (ours; the paper names "
    "none): landmark_jax/data/regions.py and docs/decisions.md.",
  )
  regions.add_argument(
    "--landmarks-csv",
    required=True,
    metavar="IN",
    help="a CSV with landmark_id and latitude,longitude (or lat,lon) "
    "and/or country_code (or country; ISO 3166-1 alpha-2); other "
    "columns are ignored",
  )
  regions.add_argument(
    "--out",
    required=True,
    metavar="OUT",
    help="the landmark_id,region CSV to write (atomically), for data.regions_csv",
  )
  regions.add_argument(
    "--by",
    choices=("auto", "country", "coordinates"),
    default="auto",
    help="what decides a landmark's region: auto uses its country code "
    "where it has one (exact at borders), else its coordinates "
    "(default: auto)",
  )
  regions.add_argument(
    "--default-region",
    choices=REGIONS,
    metavar="REGION",
    help=f"the region ({', '.join(REGIONS)}) of landmarks without "
    "coordinates or country code (default: none; such landmarks are "
    "an error naming them)",
  )
  regions.set_defaults(run=_regions)
