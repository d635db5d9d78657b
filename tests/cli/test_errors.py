"""The CLI's error boundary, as a user meets it: a real `landmark-jax` process per mistake.

Each mistake must print exactly one line on stderr, naming the problem, and exit with
status 2; `--debug` (or LANDMARK_JAX_DEBUG=1) must show the traceback instead.
"""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest


def start_cli(*args, cwd, env=None) -> subprocess.Popen:
  return subprocess.Popen(
    [sys.executable, "-m", "landmark_jax.cli", *map(str, args)],
    cwd=cwd,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    env={**os.environ, **(env or {})},
  )


def finished(process: subprocess.Popen) -> subprocess.CompletedProcess:
  stdout, stderr = process.communicate(timeout=300)
  return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_cli(*args, cwd, env=None):
  return finished(start_cli(*args, cwd=cwd, env=env))


@pytest.fixture
def corrupt_index(tmp_path):
  """A saved index whose labels.npy holds garbage bytes."""
  from landmark_jax.index import CentroidIndex, IndexConfig

  rng = np.random.default_rng(0)
  vectors = rng.normal(size=(6, 8)).astype(np.float32)
  vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
  path = CentroidIndex.build(vectors, np.arange(6), IndexConfig(backend="exact")).save(
    tmp_path / "index"
  )
  (path / "labels.npy").write_bytes(b"\x93NUMPY this is not an array")
  return path


def _mistakes(tmp_path, corrupt_index, busy_port):
  empty = tmp_path / "empty_folder"
  empty.mkdir()
  a_file = tmp_path / "notes.txt"
  a_file.write_text("not a workdir")
  work = tmp_path / "run"
  return {
    # a missing file or folder
    "missing checkpoint": (
      [
        "recognize",
        "--checkpoint",
        tmp_path / "no_such_run",
        "--index",
        tmp_path / "no_index",
        "photo.jpg",
      ],
      "no_such_run",
    ),
    "missing embeddings": (
      ["clean", "--embeddings", empty, "--out", tmp_path / "c"],
      "no embedding shards",
    ),
    # a wrong file: a file where a training workdir belongs
    "file for a workdir": (["embed", "--checkpoint", a_file, "--out", tmp_path / "e"], "notes.txt"),
    "unknown config": (["train", "--config", "tiny_gpu", "--workdir", work], "tiny_gpu"),
    # an unknown key
    "unknown key": (
      ["train", "--config", "tiny_cpu", "--workdir", work, "optim.lr=0.1"],
      "optim.lr",
    ),
    # values out of range: on the command line and in a config section
    "specificity out of range": (
      ["calibrate", "--checkpoint", work, "--index", work, "--target-specificity", "1.5"],
      "1.5",
    ),
    "port out of range": (
      ["serve", "--checkpoint", work, "--index", work, "--port", "99999"],
      "99999",
    ),
    "config value out of range": (
      ["train", "--config", "tiny_cpu", "--workdir", work, "calibration.target_specificity=2.0"],
      "target_specificity",
    ),
    "wrong type": (
      ["train", "--config", "tiny_cpu", "--workdir", work, "pipeline.batch_size=many"],
      "batch_size",
    ),
    # a corrupt index
    "corrupt index": (["remove-landmarks", "--index", corrupt_index, "3"], "labels.npy"),
    # no data
    "no photos": (
      [
        "train",
        "--config",
        "tiny_cpu",
        "--workdir",
        work,
        "data.kind=folder",
        f"data.root={empty}",
      ],
      "no images",
    ),
    "missing argument": (["embed", "--out", tmp_path / "e"], "--checkpoint"),
    # values a config section refuses, before any work starts
    "batch size 0": (
      ["train", "--config", "tiny_cpu", "--workdir", work, "pipeline.batch_size=0"],
      "batch_size",
    ),
    "unknown loss": (
      ["train", "--config", "tiny_cpu", "--workdir", work, "loss.kind=foo"],
      "loss.kind",
    ),
    "unknown backbone": (
      ["train", "--config", "tiny_cpu", "--workdir", work, "model.backbone=resnet_tinyx"],
      "resnet_tinyx",
    ),
    "negative learning rate": (
      ["train", "--config", "tiny_cpu", "--workdir", work, "optim.lr_backbone=-1"],
      "lr_backbone",
    ),
    "unknown index backend": (
      ["build-index", "--clean", empty, "--out", tmp_path / "i", "backend=faiss"],
      "faiss",
    ),
    # a port another process holds: refused before the model is loaded
    "port in use": (
      [
        "serve",
        "--checkpoint",
        tmp_path / "no_such_run",
        "--index",
        work,
        "--port",
        str(busy_port),
      ],
      str(busy_port),
    ),
  }


@pytest.mark.slow
def test_each_mistake_is_one_line_and_status_2(tmp_path, corrupt_index):
  failures = []
  with socket.socket() as busy:
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    mistakes = _mistakes(tmp_path, corrupt_index, busy.getsockname()[1])
    # All at once: each process spends seconds importing, and they wait on nothing shared.
    started = {
      name: (start_cli(*args, cwd=tmp_path), needle) for name, (args, needle) in mistakes.items()
    }
    results = {name: (finished(process), needle) for name, (process, needle) in started.items()}
  for name, (result, needle) in results.items():
    lines = result.stderr.splitlines()
    if result.returncode != 2 or len(lines) != 1 or needle not in lines[0]:
      failures.append(f"{name}: status {result.returncode}, stderr {result.stderr!r}")
    elif "Traceback" in result.stderr:
      failures.append(f"{name}: traceback shown")
  assert not failures, "\n".join(failures)
  # Nothing was started: no training workdir appeared for the refused runs.
  assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_debug_shows_the_traceback(tmp_path):
  for args, env in (
    (["--debug", "train", "--config", "tiny_gpu", "--workdir", tmp_path / "w"], {}),
    (["train", "--debug", "--config", "tiny_gpu", "--workdir", tmp_path / "w"], {}),
    (["train", "--config", "tiny_gpu", "--workdir", tmp_path / "w"], {"LANDMARK_JAX_DEBUG": "1"}),
  ):
    result = run_cli(*args, cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr


def test_an_index_without_label_map_is_one_line(tmp_path):
  from landmark_jax.index import CentroidIndex, IndexConfig

  vectors = np.random.default_rng(1).normal(size=(4, 8)).astype(np.float32)
  vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # an index holds unit vectors
  path = CentroidIndex.build(vectors, np.arange(4), IndexConfig(backend="exact")).save(
    tmp_path / "index"
  )
  result = run_cli("remove-landmarks", "--index", path, "999", cwd=tmp_path)
  assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
  assert "label map" in result.stderr


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
  """Only a user's mistakes become one line: an internal error propagates unchanged."""
  from landmark_jax import cli
  from landmark_jax.train import loop

  def broken_train(config, workdir, **kwargs):
    raise RuntimeError("an internal bug")

  monkeypatch.setattr(loop, "train", broken_train)
  with pytest.raises(RuntimeError, match="an internal bug"):
    cli.main(["train", "--config", "tiny_cpu", "--workdir", str(tmp_path / "w")])


def test_out_of_device_memory_is_one_line_naming_the_allocation(tmp_path, monkeypatch, capsys):
  """XLA's RESOURCE_EXHAUSTED (`benchmark device`'s defaults on a CPU asked for 25 GB) is a
  size the user chose: one line and status 2; --debug keeps the traceback."""
  import jax
  import jax.numpy as jnp

  from landmark_jax import cli
  from landmark_jax.train import loop

  def too_big(config, workdir, **kwargs):  # a real allocation XLA refuses: 32 TiB
    jnp.zeros((1 << 45,), jnp.uint8).block_until_ready()

  monkeypatch.setattr(loop, "train", too_big)
  argv = ["train", "--config", "tiny_cpu", "--workdir", str(tmp_path / "w")]
  assert cli.main(argv) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("landmark-jax train: error: out of memory on the")
  assert "RESOURCE_EXHAUSTED: Out of memory allocating 35184372088832 bytes" in err[0]
  with pytest.raises(jax.errors.JaxRuntimeError):
    cli.main(["--debug", *argv])
