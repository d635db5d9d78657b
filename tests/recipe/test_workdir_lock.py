"""One recipe at a time on a workdir: a second is refused naming the first, a killed one
leaves no stale lock, and a file system that cannot lock is said, not fatal."""

import errno
import fcntl
import os
import signal
import subprocess
import sys
import textwrap

from landmark_jax.cli.main import main
from landmark_jax.recipe import workdir_lock
from tests.recipe.helpers import listed_folder

HOLDER = textwrap.dedent(
  """
  import pathlib, sys, time
  from landmark_jax.recipe.workdir_lock import one_recipe_at_a_time
  with one_recipe_at_a_time(pathlib.Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
  """
)


def test_a_second_recipe_on_the_workdir_is_refused_naming_the_first(tmp_path, capsys):
  data = listed_folder(tmp_path / "data", per_landmark=(20, 20, 20, 20), non_landmarks=80)
  workdir = tmp_path / "w"
  holder = subprocess.Popen(
    [sys.executable, "-c", HOLDER, str(workdir / "recipe")], stdout=subprocess.PIPE, text=True
  )
  try:
    assert holder.stdout.readline().strip() == "held"
    argv = ["recipe", "--data", str(data), "--workdir", str(workdir), "--config", "tiny_cpu"]
    status = main([*argv, "--min-photos", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert "another recipe runs on" in err[0] and f"pid {holder.pid}:" in err[0], err
    assert not (workdir / "split").exists()  # refused before its first step
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  # The kernel dropped the killed holder's lock: no stale lock to delete by hand.
  with workdir_lock.one_recipe_at_a_time(workdir / "recipe", say=lambda _: None):
    assert f"pid {os.getpid()}:" in (workdir / "recipe" / "lock").read_text()


def test_a_file_system_that_cannot_lock_is_said_and_the_run_goes_on(tmp_path, monkeypatch):
  def no_locks(fd, operation):
    raise OSError(errno.ENOLCK, "No locks available")

  monkeypatch.setattr(fcntl, "flock", no_locks)
  said = []
  with workdir_lock.one_recipe_at_a_time(tmp_path / "recipe", say=said.append):
    ran = True
  assert ran and len(said) == 1 and "does not lock (No locks available)" in said[0]
