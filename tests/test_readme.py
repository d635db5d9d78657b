"""Every ```python block of README.md runs as written, so the README cannot rot.

The README promises that its Python examples run from the repository root after `make demo`.
Each section's blocks run in order as one script (a later block may use an earlier one's
names), in a subprocess whose working directory is laid out like that root: the session's
tiny model as ``workdir/demo/train`` and its index, calibrated, as ``workdir/demo/index``.
The demo dataset is the session's (``LANDMARK_JAX_CACHE``), and XLA_FLAGS / JAX_* pass through,
so the scripts see the same 8 simulated devices and compile settings as the other tests.
"""

import math
import os
import pathlib
import subprocess
import sys
import typing

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
# The torchvision checkpoint that "Pretrained weights" converts ("a checkpoint you already
# have"): the test writes one of that architecture, randomly initialised, under this name.
PRETRAINED_FILE = "wide_resnet50_2-9ba9bcbe.pth"
# Checks run after a section's blocks, in the same script: that the examples did their work
# (a loop over no batch, or no prediction, would otherwise pass unseen).
CHECKS = {
  "Quick start (a fresh machine with Python 3.11)": """
assert isinstance(p, lj.Prediction) and p.reason in (None, "below_threshold", "far_from_references")
""",
  "Models": """
assert embedding.shape == (len(images), 512) and logits.shape == (len(images), 1001)
assert variables["params"]["backbone"] is backbone_vars["params"]
""",
  "Data": """
assert batch["image"].shape[0] == 32 and skipped.total == 0
""",
  "From a trained model to recognition": """
assert isinstance(trained, lj.TrainedModel) and recognizer.eta > -math.inf  # calibrated
assert len(predictions) == len(paths) == 2
""",
  "The paper's comparison: a DELF-style baseline": """
assert delf.min_inliers is not None and len(delf.database) > 0
""",
}


class Block(typing.NamedTuple):
  section: str  # the ``## `` heading it is under (``###`` subsections belong to it)
  line: int  # of the opening fence, 1-based
  code: str


def python_blocks(markdown: str) -> list[Block]:
  """The ```python blocks of `markdown`, in order; headings inside any fenced block (a
  ``## `` line in a bash block) are code, not sections."""
  blocks, section, fence, code, start = [], "", None, [], 0
  for number, line in enumerate(markdown.splitlines(), 1):
    if fence is None:
      if line.startswith("```"):
        fence, code, start = line[3:].strip(), [], number
      elif line.startswith("## "):
        section = line[3:].strip()
    elif line.strip() == "```":
      if fence == "python":
        blocks.append(Block(section, start, "\n".join(code) + "\n"))
      fence = None
    else:
      code.append(line)
  assert fence is None, f"README.md: the block opened at line {start} is never closed"
  return blocks


def sections(blocks: list[Block]) -> dict[str, list[Block]]:
  grouped: dict[str, list[Block]] = {}
  for block in blocks:
    grouped.setdefault(block.section, []).append(block)
  return grouped


BLOCKS = python_blocks(README.read_text())
SECTIONS = sections(BLOCKS)


def test_every_python_block_is_found():
  text = README.read_text()
  # Counted independently of the parser: every opening fence is one block it must return.
  assert len(BLOCKS) == text.count("\n```python\n") >= 6
  assert set(CHECKS) <= set(SECTIONS), sorted(SECTIONS)


def test_the_parser_keeps_sections_and_skips_other_fences():
  markdown = (
    "## A\n```python\nx = 1\n```\n```bash\n## not a heading\n```\n### A.1\n"
    "```python\ny = x\n```\n## B\n```python\nz = 2\n```\n"
  )
  assert python_blocks(markdown) == [
    Block("A", 2, "x = 1\n"),
    Block("A", 9, "y = x\n"),
    Block("B", 13, "z = 2\n"),
  ]


@pytest.fixture(scope="module")
def demo_root(tiny_trained, index_dir, tmp_path_factory):
  """A folder laid out like the repository root after `make demo`."""
  import landmark_jax as lj
  from landmark_jax.data import source_for
  from landmark_jax.eval.calibration import calibrate

  root = tmp_path_factory.mktemp("readme-root")
  demo = root / "workdir" / "demo"
  demo.mkdir(parents=True)
  (demo / "train").symlink_to(tiny_trained[0], target_is_directory=True)
  # The shared fixture's index is not calibrated; the demo's is (its η is in the manifest).
  trained = lj.load_trained(tiny_trained[0])
  index = lj.index.CentroidIndex.load(index_dir / "index")
  if "eta" not in index.metadata:
    validation = source_for(trained.config.data, "val", trained.label_map)
    calibration = calibrate(
      lj.Recognizer(trained, index, eta=-math.inf),
      validation,
      trained.config.calibration.target_specificity,
    )
    index = index.with_metadata(eta=calibration["eta"], calibration=calibration)
  index.save(demo / "index")
  return root


def write_pretrained_checkpoint(path: pathlib.Path) -> None:
  torch = pytest.importorskip("torch", reason="PyTorch is installed by `make test`")
  torchvision = pytest.importorskip("torchvision")
  torch.manual_seed(0)
  torch.save(torchvision.models.wide_resnet50_2(weights=None).state_dict(), path)


@pytest.mark.parametrize("section", list(SECTIONS))
def test_the_section_runs_as_written(section, demo_root, demo_cache):
  code = "".join(block.code for block in SECTIONS[section])
  pretrained = demo_root / PRETRAINED_FILE
  if PRETRAINED_FILE in code:
    write_pretrained_checkpoint(pretrained)
  check = CHECKS.get(section, "")
  # Under the main guard, like the Data example: its worker processes re-import the script.
  script = code + (
    "\nif __name__ == '__main__':\n  import math\n"
    + "".join(f"  {line}\n" for line in check.strip().splitlines())
    if check
    else ""
  )
  path = demo_root / f"readme_{SECTIONS[section][0].line}.py"
  path.write_text(script)
  env = {**os.environ, "LANDMARK_JAX_CACHE": str(demo_cache)}
  try:
    result = subprocess.run(
      [sys.executable, path.name],
      cwd=demo_root,
      env=env,
      capture_output=True,
      text=True,
      timeout=600,
      check=False,
    )
  finally:
    pretrained.unlink(missing_ok=True)  # 276 MB, in a temporary folder pytest keeps a while
  lines = ", ".join(str(block.line) for block in SECTIONS[section])
  assert result.returncode == 0, (
    f"README.md section {section!r} (blocks at lines {lines}) failed:\n"
    f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-6000:]}"
  )
