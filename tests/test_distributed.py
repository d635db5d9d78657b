"""Joining several processes: what is refused before anything starts, and when a launcher's
processes are joined without flags. The joined run itself: tests/train/test_multihost.py."""

import numpy as np
import pytest

from landmark_jax import distributed
from landmark_jax.cli.main import main
from landmark_jax.errors import UsageError


@pytest.mark.parametrize(
  "kwargs, message",
  [
    (
      dict(coordinator_address="127.0.0.1:1234"),
      "--coordinator-address given without --num-processes and --process-id",
    ),
    (
      dict(num_processes=2, process_id=0),
      "--num-processes, --process-id given without --coordinator-address",
    ),
    (
      dict(coordinator_address="127.0.0.1:1234", num_processes=2, process_id=2),
      "--process-id 2 is not in 0…1",
    ),
    (dict(coordinator_address="127.0.0.1", num_processes=2, process_id=0), "needs a port"),
    (dict(heartbeat_timeout=0), "heartbeat timeout must be ≥ 1"),
  ],
)
def test_an_incomplete_or_impossible_group_is_refused(kwargs, message):
  with pytest.raises(UsageError, match=message):
    distributed.ProcessGroup(**kwargs)


def test_a_mistaken_group_on_the_command_line_is_one_line_before_any_work(tmp_path, capsys):
  status = main(
    [
      "train",
      "--config",
      "tiny_cpu",
      "--workdir",
      str(tmp_path / "w"),
      "--num-processes",
      "2",
      "--process-id",
      "0",
    ]
  )
  err = capsys.readouterr().err.strip().splitlines()
  assert status == 2 and len(err) == 1, err
  assert "given without --coordinator-address" in err[0]
  assert not (tmp_path / "w").exists()


LAUNCHER_VARIABLES = (
  "SLURM_JOB_ID",
  "SLURM_NTASKS",
  "SLURM_PROCID",
  "SLURM_STEP_ID",
  "SLURM_STEP_NUM_TASKS",
  "OMPI_COMM_WORLD_RANK",
  "OMPI_COMM_WORLD_SIZE",
)


def _launched_by(monkeypatch, env: dict) -> None:
  """The process's environment holds `env`'s launcher variables and no other."""
  for name in LAUNCHER_VARIABLES:
    monkeypatch.delenv(name, raising=False)
  for name, value in env.items():
    monkeypatch.setenv(name, value)


@pytest.mark.parametrize(
  "env, expected",
  [
    ({}, 1),
    # Inside an allocation but not started by srun: one process.
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}, 1),
    ({"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "4"}, 4),
    ({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}, 2),
    ({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "x"}, 1),
  ],
)
def test_launched_processes_are_read_from_the_launchers_variables(monkeypatch, env, expected):
  _launched_by(monkeypatch, env)
  assert distributed._launched_processes() == expected


@pytest.mark.parametrize(
  "env, group, expected",
  [
    ({}, distributed.ProcessGroup(), (0, 1, "alone")),
    # `salloc -n 4` without srun: one process, rank 0, whatever SLURM_PROCID says.
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4", "SLURM_PROCID": "2"}, None, (0, 1, "alone")),
    (
      {"SLURM_STEP_ID": "3", "SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "2"},
      None,
      (2, 4, "SLURM"),
    ),
    ({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}, None, (1, 2, "Open MPI")),
    # The flags win over a launcher's variables.
    (
      {"SLURM_STEP_ID": "3", "SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "2"},
      distributed.ProcessGroup("h:1", 3, 1),
      (1, 3, "flags"),
    ),
  ],
)
def test_launched_rank_reads_flags_then_launchers(monkeypatch, env, group, expected):
  _launched_by(monkeypatch, env)
  assert distributed.launched_rank(group or distributed.ProcessGroup()) == expected


def test_one_process_keeps_its_own_values():
  # Alone, the "sum over processes" is the value itself, in float64; the part is everything.
  values = np.array([[0.1, 2.0], [3.0, 1e-9]], np.float32)
  summed = distributed.sum_over_processes(values)
  assert summed.dtype == np.float64
  np.testing.assert_array_equal(summed, values.astype(np.float64))
  np.testing.assert_array_equal(distributed.this_process_part(5), np.arange(5))
