"""The direction of imports inside the package (docs/architecture.md, "Which way imports go"),
and what a serving process loads.

The rules are checked on the source, by an AST scan of every ``import`` and ``from … import``
in landmark_jax/ — those inside functions too, since a function-level import is still a
dependency, only a later one. A fresh interpreter then checks the consequence that matters
at run time: the service and ``from landmark_jax import Recognizer`` restore a model without
loading the training loop or an optimizer.
"""

import ast
import json
import pathlib
import subprocess
import sys
import textwrap
import typing

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / "landmark_jax"
ROOT = "landmark_jax"


class Rule(typing.NamedTuple):
  forbidden: tuple[str, ...]  # what the package may not import (module or package names)
  allowed: tuple[str, ...] = ()  # exceptions inside `forbidden`
  exempt: tuple[str, ...] = ()  # importers inside the package the rule does not bind


# The layers above the shared forward pass (`embedding`), bottom to top.
_ABOVE_EMBEDDING = (
  "train",
  "stages",
  "index",
  "recognize",
  "eval",
  "serve",
  "baselines",
  "benchmarks",
  "experiment",
  "demo",
  "ablation",
  "cli",
)
# Everything a model, loss or data module could wrongly reach up to (config composes their
# dataclasses, so it sits above them too).
_ABOVE_DATA = ("config", "configs", "embedding", *_ABOVE_EMBEDDING)

# The import rules of docs/architecture.md, one row per importing package (names relative to
# landmark_jax). Change the page and this table together.
RULES: dict[str, Rule] = {
  # The leaves import nothing of ours but each other.
  **{
    leaf: Rule(("models", "losses", "data", *_ABOVE_DATA))
    for leaf in ("errors", "folders", "geo", "sharding", "distributed", "runtime")
  },
  "models": Rule(_ABOVE_DATA),
  "data": Rule(_ABOVE_DATA),
  # Downloading and packing GLDv2: beside data (it packs with data.packed), used by the CLI.
  "prepare": Rule(_ABOVE_DATA),
  "losses": Rule(_ABOVE_DATA),
  # The one inference forward pass, shared by training, the stages and recognition.
  "embedding": Rule(_ABOVE_EMBEDDING),
  # The search artifact: built from centroids, knows nothing of how they were made.
  "index": Rule(
    (
      "train",
      "stages",
      "recognize",
      "eval",
      "serve",
      "baselines",
      "benchmarks",
      "cli",
      "experiment",
      "demo",
      "ablation",
    )
  ),
  # Training imports no stage, index or recognition.
  "train": Rule(
    (
      "stages",
      "index",
      "recognize",
      "eval",
      "serve",
      "baselines",
      "benchmarks",
      "cli",
      "experiment",
      "demo",
      "ablation",
    )
  ),
  # The offline steps restore a model (train.checkpoints) and build indexes, but never
  # reach into the training loop, recognition, evaluation or serving.
  "stages": Rule(
    (
      "train",
      "recognize",
      "serve",
      "eval",
      "baselines",
      "benchmarks",
      "cli",
      "experiment",
      "demo",
      "ablation",
    ),
    allowed=("train.checkpoints",),
  ),
  # The front door sits below everything that uses it.
  "recognize": Rule(
    ("eval", "serve", "baselines", "benchmarks", "cli", "experiment", "demo", "ablation", "stages")
  ),
  # The pipeline runner sits below the two commands that run it.
  "experiment": Rule(("demo", "ablation", "cli")),
  # The command line is imported by nothing (but itself, and `python -m landmark_jax`).
  "": Rule(("cli",), exempt=("__main__",)),
}


def qualified(name: str) -> str:
  return f"{ROOT}.{name}" if name else ROOT


def within(module: str, package: str) -> bool:
  return module == package or module.startswith(package + ".")


def module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


def is_module(name: str) -> bool:
  """Whether `name` (landmark_jax.x.y) is a module or package of the source tree."""
  path = PACKAGE_DIR.parent.joinpath(*name.split("."))
  return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
  """(line, imported module) for every import statement of `source`, anywhere in it.

  Relative imports are resolved against `module`; ``from p import name`` counts as an import
  of ``p.name`` when that is a module (``from landmark_jax.train import optim``), else of
  ``p`` itself."""
  found = {}  # insertion-ordered set: `from m import a, b` is one import of m
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      found.update(((node.lineno, alias.name), None) for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = module.split(".")
        if not is_package:
          base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        package = ".".join(base + ([node.module] if node.module else []))
      else:
        package = node.module
      for alias in node.names:
        submodule = f"{package}.{alias.name}"
        found[node.lineno, submodule if is_module(submodule) else package] = None
  return list(found)


def package_imports() -> list[tuple[str, pathlib.Path, int, str]]:
  """(importer, file, line, imported module) for every import of landmark_jax's own modules."""
  edges = []
  for path in sorted(PACKAGE_DIR.rglob("*.py")):
    importer = module_name(path)
    for line, target in imports_of(path.read_text(), importer, path.name == "__init__.py"):
      if within(target, ROOT):
        edges.append((importer, path, line, target))
  return edges


def violations(edges, rules=RULES) -> list[str]:
  found = []
  for importer, path, line, target in edges:
    for scope, rule in rules.items():
      if not within(importer, qualified(scope)):
        continue
      if any(within(importer, qualified(e)) for e in rule.exempt):
        continue
      for forbidden in map(qualified, rule.forbidden):
        if (
          within(target, forbidden)
          and not within(importer, forbidden)
          and not any(within(target, qualified(a)) for a in rule.allowed)
        ):
          where = path.relative_to(PACKAGE_DIR.parent)
          found.append(
            f"{where}:{line} imports {target}: {qualified(scope)} may not import "
            f"{forbidden}"
            + (f" (except {', '.join(map(qualified, rule.allowed))})" if rule.allowed else "")
          )
  return found


def test_every_rule_names_modules_that_exist():
  # A renamed package would otherwise make its rule match nothing and pass forever.
  names = {
    name
    for rule_scope, rule in RULES.items()
    for name in (rule_scope, *rule.forbidden, *rule.allowed)
  }
  missing = sorted(name for name in names if not is_module(qualified(name)))
  assert not missing, f"the layering table names modules that do not exist: {missing}"


def test_the_scanner_resolves_every_kind_of_import():
  source = textwrap.dedent("""
      import landmark_jax.index
      from landmark_jax.train import optim, TrainResult
      from .cleaning import CleaningConfig
      from .. import sharding
      from ..data import catalog

      def later():
        from landmark_jax.eval.calibration import calibrate
        import optax
      """)
  assert sorted(imports_of(source, "landmark_jax.stages.embed", is_package=False)) == [
    (2, "landmark_jax.index"),
    (3, "landmark_jax.train"),  # TrainResult: a name, not a module
    (3, "landmark_jax.train.optim"),
    (4, "landmark_jax.stages.cleaning"),
    (5, "landmark_jax.sharding"),
    (6, "landmark_jax.data.catalog"),
    (9, "landmark_jax.eval.calibration"),  # inside a function
    (10, "optax"),
  ]
  # In a package's __init__, "." is the package itself.
  assert imports_of("from . import embed", "landmark_jax.stages", is_package=True) == [
    (1, "landmark_jax.stages.embed")
  ]


def test_the_table_flags_wrong_imports_and_only_those():
  def edge(importer, target, line=7):
    path = PACKAGE_DIR.parent.joinpath(*importer.split(".")).with_suffix(".py")
    return importer, path, line, target

  edges = [
    edge("landmark_jax.stages.embed", "landmark_jax.train.checkpoints"),  # allowed
    edge("landmark_jax.stages.embed", "landmark_jax.train.loop"),
    edge("landmark_jax.cli.offline", "landmark_jax.cli.common"),  # its own package
    edge("landmark_jax.eval.report", "landmark_jax.cli", line=3),
    edge("landmark_jax.data.catalog", "landmark_jax.embedding"),
    edge("landmark_jax.recognize", "landmark_jax.index"),
  ]  # allowed
  assert violations(edges) == [
    "landmark_jax/stages/embed.py:7 imports landmark_jax.train.loop: landmark_jax.stages "
    "may not import landmark_jax.train (except landmark_jax.train.checkpoints)",
    "landmark_jax/eval/report.py:3 imports landmark_jax.cli: landmark_jax may not import "
    "landmark_jax.cli",
    "landmark_jax/data/catalog.py:7 imports landmark_jax.embedding: landmark_jax.data may "
    "not import landmark_jax.embedding",
  ]


def test_imports_go_one_way():
  edges = package_imports()
  # The scan sees the package: the front door does use the index, and most modules import
  # some other (an empty scan, or one that missed the package's imports, cannot pass).
  assert ("landmark_jax.recognize", "landmark_jax.index") in {(i, t) for i, _, _, t in edges}
  assert len({importer for importer, *_ in edges}) > 40
  problems = violations(edges)
  assert not problems, "imports against docs/architecture.md:\n  " + "\n  ".join(problems)


def test_serving_loads_no_training_code_and_no_optimizer():
  script = textwrap.dedent("""
      import json, sys
      import landmark_jax.serve.app
      from landmark_jax import Recognizer
      print(json.dumps(sorted(sys.modules)))
      """)
  result = subprocess.run(
    [sys.executable, "-c", script], capture_output=True, text=True, check=False
  )
  assert result.returncode == 0, result.stderr
  loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
  # Positive control: the import did load inference, and the checkpoint reader with it.
  assert {"landmark_jax.recognize", "landmark_jax.train.checkpoints"} <= loaded
  training = {
    "landmark_jax.train.loop",
    "landmark_jax.train.optim",
    "landmark_jax.train.step",
    "landmark_jax.train.state",
    "landmark_jax.train.curriculum",
  }
  unwanted = sorted(
    name for name in loaded if name in training or name == "optax" or name.startswith("optax.")
  )
  assert not unwanted, f"serving loaded training code: {unwanted}"
