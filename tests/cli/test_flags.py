"""Every option of every command says what it does, and values out of range are refused by
argparse (one line, status 2) before any work starts.

The parser is walked, not listed here: a flag added later is checked too.
"""

import argparse
import re

import pytest

from landmark_jax.cli.common import add_source_args, source_from_args
from landmark_jax.cli.main import build_parser
from landmark_jax.errors import UsageError


def commands(parser, path=()):
  """(command path, its parser) for the top level and every (sub-)subcommand."""
  yield path, parser
  for action in parser._actions:
    if isinstance(action, argparse._SubParsersAction):
      for name, sub in action.choices.items():
        yield from commands(sub, (*path, name))


def arguments(parser):
  return [a for a in parser._actions if not isinstance(a, argparse._SubParsersAction)]


def test_the_walk_reaches_every_command():
  names = {" ".join(path) for path, _ in commands(build_parser())}
  assert {
    "train",
    "recognize",
    "serve",
    "add-landmarks",
    "benchmark",
    "benchmark model",
    "benchmark train",
    "benchmark index",
    "benchmark compare",
    "benchmark data",
    "prepare",
    "prepare gldv2",
    "regions",
  } <= names


def test_every_option_and_positional_has_help():
  missing = []
  for path, parser in commands(build_parser()):
    for action in arguments(parser):
      text = action.help
      if not text or text == argparse.SUPPRESS or not text.strip():
        name = "/".join(action.option_strings) or action.dest
        missing.append(f"landmark-jax {' '.join(path)} {name}")
    for action in parser._actions:  # each subcommand's one-line summary in the list
      if isinstance(action, argparse._SubParsersAction):
        missing += [
          f"landmark-jax {' '.join(path)} {choice.dest} (summary)"
          for choice in action._choices_actions
          if not choice.help
        ]
  assert not missing, "no help:\n" + "\n".join(missing)


def test_a_required_option_names_no_default():
  # "(default: …)" on an option a command cannot run without would be false.
  wrong = []
  for path, parser in commands(build_parser()):
    required_groups = [g for g in parser._mutually_exclusive_groups if g.required]
    for action in arguments(parser):
      required = action.required or any(action in g._group_actions for g in required_groups)
      if required and re.search(r"\bdefault:", action.help or ""):
        wrong.append(
          f"landmark-jax {' '.join(path)} {'/'.join(action.option_strings)}: {action.help!r}"
        )
  assert not wrong, "\n".join(wrong)


def test_add_landmarks_requires_its_photos_and_says_so(capsys):
  # The new landmarks' photos are required: no "(default: …)" for --root, and a command line
  # without --root or --folder is refused by argparse.
  parser = dict(commands(build_parser()))[("add-landmarks",)]
  root = next(a for a in parser._actions if "--root" in a.option_strings)
  assert "(this or --folder is required)" in root.help and "default" not in root.help
  with pytest.raises(SystemExit) as exit:
    build_parser().parse_args(["add-landmarks", "--checkpoint", "run", "--index", "index"])
  assert exit.value.code == 2
  err = capsys.readouterr().err.splitlines()
  assert len(err) == 1 and "--root" in err[0] and "--folder" in err[0]


def source_parser(**kwargs):
  parser = argparse.ArgumentParser(prog="t")
  add_source_args(parser, **kwargs)
  return parser


def test_add_source_args_help_and_rules(tmp_path, capsys):
  optional = source_parser(default="the test split")
  helps = {a.dest: a.help for a in optional._actions}
  assert "(without this or --folder: the test split)" in helps["root"]
  assert "default: train.csv" in helps["csv"]
  assert source_from_args(optional.parse_args([]), None) is None  # the command's default

  required = source_parser(required=True)
  helps = {a.dest: a.help for a in required._actions}
  assert "default" not in helps["root"] and "required" in helps["root"]
  with pytest.raises(SystemExit):
    required.parse_args([])  # neither --root nor --folder
  with pytest.raises(SystemExit):
    optional.parse_args(["--root", "a", "--folder", "b"])  # one source, not two
  capsys.readouterr()

  # --csv / --non-landmark-csv name files under --root: alone they are a mistake, not ignored.
  for flags in (["--csv", "val.csv"], ["--folder", str(tmp_path), "--non-landmark-csv", "n.csv"]):
    with pytest.raises(UsageError, match="give --root too"):
      source_from_args(optional.parse_args(flags), None)
  # With --root, --csv is the list read (default train.csv).
  (tmp_path / "val.csv").write_text("id,url,landmark_id\n")
  with pytest.raises(Exception, match="train.csv"):
    source_from_args(optional.parse_args(["--root", str(tmp_path)]), None)
  assert (
    len(source_from_args(optional.parse_args(["--root", str(tmp_path), "--csv", "val.csv"]), None))
    == 0
  )


MODEL = ["--checkpoint", "run", "--index", "index"]

# (command line, what the one line must name): representative values out of range or of the
# wrong type, one or more per command.
INVALID = {
  "negative workers": (["embed", "--checkpoint", "run", "--out", "e", "--num-workers", "-1"], "-1"),
  "batch size 0": (["embed", "--checkpoint", "run", "--out", "e", "--batch-size", "0"], "0"),
  "port 70000": (["serve", *MODEL, "--port", "70000"], "70000"),
  "port 0": (["serve", *MODEL, "--port", "0"], "0"),
  "port not a number": (["serve", *MODEL, "--port", "http"], "http"),
  "wait NaN": (["serve", *MODEL, "--max-wait-ms", "nan"], "nan"),
  "read timeout 0": (["serve", *MODEL, "--read-timeout-s", "0"], "0"),
  "negative radius": (["serve", *MODEL, "--radius-km", "-5"], "-5"),
  "top-k 0": (["recognize", *MODEL, "--top-k", "0", "photo.jpg"], "0"),
  "infinite radius": (["recognize", *MODEL, "--radius-km", "inf", "photo.jpg"], "inf"),
  "no photo": (["recognize", *MODEL], "PHOTO"),
  "specificity 1.5": (["calibrate", *MODEL, "--target-specificity", "1.5"], "1.5"),
  "two photo sources": (
    ["evaluate", *MODEL, "--out", "o", "--root", "a", "--folder", "b"],
    "--folder",
  ),
  "rare threshold 0": (["evaluate", *MODEL, "--out", "o", "--rare-threshold", "0"], "0"),
  "bench batch 0": (["benchmark", "model", "--batch-size", "0"], "0"),
  "bench repeats -3": (["benchmark", "model", "--repeats", "-3"], "-3"),
  "unknown backbone": (["benchmark", "model", "--backbone", "resnet51"], "resnet51"),
  "unknown dtype": (["benchmark", "model", "--dtype", "float16"], "float16"),
  "train case without batch": (
    ["benchmark", "train", "--cases", "resnet_tiny:64"],
    "resnet_tiny:64",
  ),
  "train case batch 0": (["benchmark", "train", "--cases", "resnet_tiny:64:0"], "resnet_tiny"),
  "index size 0": (["benchmark", "index", "--sizes", "1000", "0"], "0"),
  "queries -1": (["benchmark", "index", "--queries", "-1"], "-1"),
  "fewer images than a batch": (["benchmark", "data", "--num-images", "3"], "3"),
  "compare queries 0": (["benchmark", "compare", "--max-queries", "0"], "0"),
  "compare unknown attention": (["benchmark", "compare", "--attention", "magic"], "magic"),
  "device image size 0": (["benchmark", "device", "--image-sizes", "224", "0"], "0"),
  "device peak -1": (["benchmark", "device", "--peak-tflops", "-1"], "-1"),
  "device workers -1": (["benchmark", "device", "--workers", "-1"], "-1"),
  "device unknown backbone": (["benchmark", "device", "--backbone", "nope"], "nope"),
  "kernels batch 0": (["benchmark", "cpu-kernels", "--batch-sizes", "0"], "0"),
  "cache and no cache": (
    ["serve", *MODEL, "--compilation-cache", "c", "--no-compilation-cache"],
    "--no-compilation-cache",
  ),
}


@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_values_are_one_line_and_status_2(name, capsys):
  argv, needle = INVALID[name]
  with pytest.raises(SystemExit) as exit:
    build_parser().parse_args(argv)
  err = capsys.readouterr().err.splitlines()
  assert exit.value.code == 2
  assert len(err) == 1 and needle in err[0] and "error:" in err[0], err


def test_valid_values_still_parse():
  parse = build_parser().parse_args
  assert parse(["serve", *MODEL, "--port", "65535"]).port == 65535
  assert parse(
    ["benchmark", "train", "--cases", "resnet_tiny:64:32", "wide_resnet_tiny:32:8"]
  ).cases == [("resnet_tiny", 64, 32), ("wide_resnet_tiny", 32, 8)]
  assert parse(["benchmark", "model"]).backbone == "wide_resnet50_2"
  assert parse(["recognize", *MODEL, "--radius-km", "0", "p.jpg"]).radius_km == 0
