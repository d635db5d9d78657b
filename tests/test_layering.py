"""The direction of imports inside the package (docs/architecture.md, "Which way imports go"),
and what a process loads.

The rules are checked on the source, by an AST scan of every ``import`` and ``from … import``
in landmark_jax/ — those inside functions and under ``if TYPE_CHECKING`` too, since a
function-level import is still a dependency, only a later one. Fresh interpreters then check
the consequences that matter at run time: loading a config loads no algorithm, and the
service and ``from landmark_jax import Recognizer`` restore a model without loading the
training loop or an optimizer.
"""

import ast
import json
import pathlib
import subprocess
import sys
import textwrap

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / "landmark_jax"
ROOT = "landmark_jax"

# The layers, bottom to top (names relative to landmark_jax; "" is the package's own
# __init__). A module may import modules of its own package and of lower layers: never of a
# higher layer, and never of another package in its own layer (packages side by side know
# nothing of each other), except in the first layer, whose single modules may use each
# other. Every package's ``config`` module (``data.config``, ``index.config``, …: one
# section of a run's config) belongs to the first layer, whatever its package's layer: plain
# data, so anything may import it and it may import only the first layer. Change
# docs/architecture.md and this table together.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
  (
    "leaves",
    (
      "",
      "errors",
      "lazy",
      "folders",
      "geo",
      "sharding",
      "distributed",
      "runtime",
      "text",
      "lifeline",
    ),
  ),
  ("foundations", ("models", "data")),
  ("algorithms", ("losses", "prepare", "cleaning", "embedding", "config")),
  ("training and the index", ("configs", "train", "index")),
  ("the DELF-style baseline", ("baselines",)),
  ("the inference bundle", ("bundle",)),
  ("recognition", ("recognize",)),
  ("evaluation", ("eval",)),
  ("offline stages", ("stages",)),
  ("runners", ("experiment", "serve")),
  ("the recipe on a user's photos", ("fit",)),
  ("programs", ("demo", "ablation", "recipe")),
  ("benchmarks", ("benchmarks",)),
  ("the command line", ("cli",)),
  ("`python -m landmark_jax`", ("__main__",)),
)
# Of the training package, what the layers between training and the runners may import:
# restoring a trained model and the config's section. The loop, the step and the optimizer
# are the runners' and the command line's.
TRAIN_FOR_INFERENCE = ("train.checkpoints", "train.config")
TRAINING_LOOP_USERS = (
  "train",
  "experiment",
  "fit",
  "demo",
  "ablation",
  "recipe",
  "benchmarks",
  "cli",
)


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


def is_config_leaf(module: str) -> bool:
  """A package's section of the run's config (``landmark_jax.data.config``), not the
  module that assembles them (``landmark_jax.config``)."""
  return module != qualified("config") and module.rsplit(".", 1)[-1] == "config"


def unit(module: str) -> str:
  """The package (relative name) `module` belongs to for the layer rules; a config leaf is
  its own unit."""
  if is_config_leaf(module):
    return module[len(ROOT) + 1 :]
  return module[len(ROOT) + 1 :].split(".")[0] if module != ROOT else ""


def layer_of(module: str) -> int:
  if is_config_leaf(module):
    return 0
  name = unit(module)
  for rank, (_, packages) in enumerate(LAYERS):
    if name in packages:
      return rank
  raise KeyError(f"{module}: its package is in no layer of LAYERS")


def edge_problem(importer: str, target: str) -> str | None:
  """What is wrong with `importer` importing `target`, in words, or None."""
  mine, theirs = layer_of(importer), layer_of(target)
  if unit(importer) == unit(target) and not is_config_leaf(importer):
    return None
  if theirs > mine:
    return f"{LAYERS[mine][0]} may not import {LAYERS[theirs][0]} (a higher layer)"
  if theirs == mine and mine != 0:
    return f"{unit(importer)} and {unit(target)} sit side by side in {LAYERS[mine][0]}"
  if (
    within(target, qualified("train"))
    and not any(within(target, qualified(m)) for m in TRAIN_FOR_INFERENCE)
    and unit(importer) not in TRAINING_LOOP_USERS
  ):
    return f"only {', '.join(TRAINING_LOOP_USERS)} may import the training loop"
  return None


def violations(edges) -> list[str]:
  found = []
  for importer, path, line, target in edges:
    problem = edge_problem(importer, target)
    if problem:
      where = path.relative_to(PACKAGE_DIR.parent)
      found.append(f"{where}:{line} imports {target}: {problem}")
  return found


def cycles(edges) -> list[list[str]]:
  """The import cycles among modules: each strongly connected component of more than one
  module (Tarjan's algorithm), sorted."""
  graph: dict[str, set[str]] = {}
  for importer, _, _, target in edges:
    graph.setdefault(importer, set()).add(target)
    graph.setdefault(target, set())
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(node: str) -> None:
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for neighbour in sorted(graph[node]):
      if neighbour not in index:
        visit(neighbour)
        low[node] = min(low[node], low[neighbour])
      elif neighbour in on_stack:
        low[node] = min(low[node], index[neighbour])
    if low[node] == index[node]:
      component = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return sorted(found)


def edge(importer: str, target: str, line: int = 7):
  path = PACKAGE_DIR.joinpath(*importer.split(".")).with_suffix(".py")
  return qualified(importer), path, line, qualified(target)


def test_every_layer_names_packages_that_exist():
  # A renamed package would otherwise make its row match nothing and pass forever.
  names = [name for _, packages in LAYERS for name in packages]
  assert len(names) == len(set(names)), "a package is in two layers"
  missing = sorted(name for name in names if not is_module(qualified(name)))
  assert not missing, f"LAYERS names modules that do not exist: {missing}"
  for name in (*TRAIN_FOR_INFERENCE, *TRAINING_LOOP_USERS):
    assert is_module(qualified(name)), name


def test_every_module_belongs_to_a_layer():
  modules = [module_name(path) for path in PACKAGE_DIR.rglob("*.py")]
  for module in modules:
    layer_of(module)  # raises naming a module whose package is in no layer
  leaves = sorted(m for m in modules if is_config_leaf(m))
  # The sections the run's config assembles are all config leaves.
  assert {
    "landmark_jax.data.config",
    "landmark_jax.models.config",
    "landmark_jax.train.config",
    "landmark_jax.cleaning.config",
    "landmark_jax.index.config",
    "landmark_jax.eval.config",
    "landmark_jax.baselines.delf.config",
  } <= set(leaves), leaves


def test_the_scanner_resolves_every_kind_of_import():
  source = textwrap.dedent("""
      import landmark_jax.index
      from landmark_jax.train import optim, TrainResult
      from .clean import write_cleaning
      from .. import sharding
      from ..data import catalog
      if TYPE_CHECKING:
        from landmark_jax.index.centroid_index import CentroidIndex

      def later():
        from landmark_jax.eval.calibration import calibrate
        import optax
      """)
  assert sorted(imports_of(source, "landmark_jax.stages.embed", is_package=False)) == [
    (2, "landmark_jax.index"),
    (3, "landmark_jax.train"),  # TrainResult: a name, not a module
    (3, "landmark_jax.train.optim"),
    (4, "landmark_jax.stages.clean"),
    (5, "landmark_jax.sharding"),
    (6, "landmark_jax.data.catalog"),
    (8, "landmark_jax.index.centroid_index"),  # for the type checker only: still an edge
    (11, "landmark_jax.eval.calibration"),  # inside a function
    (12, "optax"),
  ]
  # In a package's __init__, "." is the package itself.
  assert imports_of("from . import embed", "landmark_jax.stages", is_package=True) == [
    (1, "landmark_jax.stages.embed")
  ]


def test_the_rules_flag_wrong_imports_and_only_those():
  edges = [
    edge("stages.embed", "train.checkpoints"),  # restoring a model: allowed
    edge("stages.embed", "train.loop"),  # the training loop: not below the runners
    edge("cli.offline", "cli.common"),  # its own package
    edge("eval.report", "cli", line=3),  # up
    edge("data.catalog", "embedding"),  # up
    edge("recognize.recognizer", "index.centroid_index"),  # down
    edge("eval.calibration", "recognize.decision"),  # down
    edge("train.loop", "index.centroid_index"),  # side by side
    edge("config", "cleaning.config"),  # a config leaf: anyone may import it
    edge("config", "baselines.delf.config"),  # even one of a higher package
    edge("data.config", "data.catalog"),  # a config leaf imports leaves only
    edge("folders", "errors"),  # leaves use each other
  ]
  assert violations(edges) == [
    "landmark_jax/stages/embed.py:7 imports landmark_jax.train.loop: only train, experiment, fit, "
    "demo, ablation, recipe, benchmarks, cli may import the training loop",
    "landmark_jax/eval/report.py:3 imports landmark_jax.cli: evaluation may not import the "
    "command line (a higher layer)",
    "landmark_jax/data/catalog.py:7 imports landmark_jax.embedding: foundations may not import "
    "algorithms (a higher layer)",
    "landmark_jax/train/loop.py:7 imports landmark_jax.index.centroid_index: train and index "
    "sit side by side in training and the index",
    "landmark_jax/data/config.py:7 imports landmark_jax.data.catalog: leaves may not import "
    "foundations (a higher layer)",
  ]


def test_the_rules_flag_the_imports_that_once_went_up_and_the_cycle():
  # The tree before the configs became leaves (main at 6008fac): the run's config took
  # CleaningConfig from the cleaning stage's algorithm module, and the list of shipped
  # configs from the configs package, whose configs import it back; the DELF baseline took
  # η's rule from evaluation; the index's modules imported each other for IndexConfig and
  # SearchSetting.
  upward = [
    edge("config", "stages.cleaning", line=30),
    edge("config", "configs", line=23),
    edge("baselines.delf.retrieval", "eval.calibration", line=29),
  ]
  assert len(violations(upward)) == 3, violations(upward)
  index = [
    edge("index.centroid_index", "index.tuning"),
    edge("index.centroid_index", "index.scann_backend"),
    edge("index.scann_backend", "index.centroid_index"),
    edge("index.tuning", "index.centroid_index"),
  ]
  assert cycles(index) == [
    [
      "landmark_jax.index.centroid_index",
      "landmark_jax.index.scann_backend",
      "landmark_jax.index.tuning",
    ]
  ]
  # One edge less and the cycle is gone; the others stand alone.
  assert cycles(index[1:2] + index[3:]) == []


def test_imports_go_one_way():
  edges = package_imports()
  # The scan sees the package: the front door does use the index, and most modules import
  # some other (an empty scan, or one that missed the package's imports, cannot pass).
  assert any(
    within(i, qualified("recognize")) and within(t, qualified("index")) for i, _, _, t in edges
  )
  assert len({importer for importer, *_ in edges}) > 40
  problems = violations(edges)
  assert not problems, "imports against docs/architecture.md:\n  " + "\n  ".join(problems)


def lazy_exports_of(path: pathlib.Path) -> dict[str, str]:
  """A package __init__'s names imported on first use (`landmark_jax.lazy`): name → the
  module it comes from, resolved. Such an import is a string the AST scan above cannot see."""
  package = module_name(path)
  found = {}
  for node in ast.walk(ast.parse(path.read_text())):
    if not isinstance(node, ast.Dict):
      continue
    for key, value in zip(node.keys, node.values):
      if isinstance(key, ast.Constant) and isinstance(value, ast.Constant):
        if isinstance(value.value, str) and value.value.startswith((".", ROOT + ".")):
          target = value.value
          found[key.value] = package + target if target.startswith(".") else target
  return found


def test_lazy_exports_stay_inside_their_package():
  # A package's first-use names are its own modules', so the string imports of `lazy`
  # add no edge the layers do not see. The package itself (landmark_jax/__init__.py) is
  # the public surface and the one exception: it re-exports names from every layer.
  inits = sorted(PACKAGE_DIR.rglob("__init__.py"))
  exported = {module_name(path): lazy_exports_of(path) for path in inits}
  assert exported[qualified("index")]["CentroidIndex"] == qualified("index.centroid_index")
  assert exported[ROOT]["Recognizer"] == qualified("recognize")
  outside = [
    f"{package} exports {name} from {target}"
    for package, names in exported.items()
    if package != ROOT
    for name, target in names.items()
    if not within(target, package)
  ]
  assert not outside, outside
  missing = [t for names in exported.values() for t in names.values() if not is_module(t)]
  assert not missing, f"first-use names from modules that do not exist: {missing}"


def test_no_import_cycles():
  found = cycles(package_imports())
  assert not found, "modules that import each other:\n  " + "\n  ".join(map(str, found))


def loaded_modules(script: str) -> set[str]:
  """The modules a fresh interpreter has loaded after `script`."""
  script = textwrap.dedent(script) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
  result = subprocess.run(
    [sys.executable, "-c", script], capture_output=True, text=True, check=False
  )
  assert result.returncode == 0, result.stderr
  return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_loading_the_config_loads_no_algorithm():
  loaded = loaded_modules("import landmark_jax.config")
  ours = {m for m in loaded if within(m, ROOT)}
  # Positive control: the config and its sections were loaded.
  assert {qualified("config"), qualified("cleaning.config"), qualified("index.config")} <= ours
  heavy = sorted(
    m for m in ours if not is_config_leaf(m) and layer_of(m) != 0 and not is_package_init(m)
  )
  assert heavy == [qualified("config")], heavy
  assert not {"jax", "numpy", "scipy", "scann", "grain", "flax"} & loaded


def is_package_init(module: str) -> bool:
  return (PACKAGE_DIR.parent.joinpath(*module.split(".")) / "__init__.py").is_file()


def test_serving_loads_no_training_code_and_no_optimizer():
  loaded = loaded_modules("""
      import landmark_jax.serve.app
      from landmark_jax import Recognizer
      """)
  # Positive control: the import did load inference, and the checkpoint reader with it.
  assert {qualified("recognize"), qualified("train.checkpoints")} <= loaded
  training = {
    qualified(f"train.{name}") for name in ("loop", "optim", "step", "state", "curriculum")
  }
  unwanted = sorted(
    name for name in loaded if name in training or name == "optax" or name.startswith("optax.")
  )
  assert not unwanted, f"serving loaded training code: {unwanted}"
