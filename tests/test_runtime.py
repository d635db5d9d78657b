"""`runtime`: XLA:CPU's inference kernels, set by the CLI's inference commands, and the
compilation cache of the commands that start often.

The kernel choice is checked where it acts — in the program XLA compiles, in a fresh
interpreter (XLA reads its flags once) — and the cache by what `recognize` leaves in it and
what a second start compiles.
"""

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from landmark_jax import runtime

# Compiles a convolution and a matrix product; prints, for each, whether XLA:CPU handed it
# to YNNPACK (a `__ynn_fusion` in the optimised program).
PROBE = textwrap.dedent("""
    import json
    from landmark_jax import runtime
    runtime.set_cpu_kernel_flag()  # before JAX starts, as the CLI's inference commands do
    import jax, jax.numpy as jnp

    def ynn(fn, *shapes):
      text = jax.jit(fn).lower(*(jnp.zeros(s, jnp.float32) for s in shapes)).compile().as_text()
      return "__ynn_fusion" in text

    conv = lambda x, w: jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    print(json.dumps({"convolution": ynn(conv, (1, 32, 32, 64), (3, 3, 64, 64)),
                      "dot": ynn(lambda a, b: a @ b, (256, 512), (512, 2048))}))
""")

MEASURED_HERE = (runtime._jaxlib_version() or "").startswith(
  runtime.CPU_KERNEL_FLAG_VERSIONS
) and platform.machine() in runtime.CPU_KERNEL_FLAG_MACHINES


def probe(**env) -> dict:
  # Without the suite's "most optimisations off", which would skip the passes that choose
  # the kernels.
  base = {
    k: v
    for k, v in os.environ.items()
    if k not in ("JAX_DISABLE_MOST_OPTIMIZATIONS", runtime.KEEP_XLA_DEFAULTS)
  }
  result = subprocess.run(
    [sys.executable, "-c", PROBE],
    capture_output=True,
    text=True,
    env={**base, "XLA_FLAGS": "", **env},
    timeout=120,
  )
  assert result.returncode == 0, result.stderr[-2000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not MEASURED_HERE, reason="the kernel flag is set on jaxlib 0.10 / x86-64")
def test_convolutions_leave_ynnpack_and_dots_stay():
  assert probe(**{runtime.KEEP_XLA_DEFAULTS: "1"}) == {"convolution": True, "dot": True}
  assert probe() == {"convolution": False, "dot": True}


def test_the_flag_is_added_once_and_gives_way(monkeypatch):
  monkeypatch.setattr(runtime, "_jaxlib_version", lambda: "0.10.2")
  monkeypatch.setattr(platform, "machine", lambda: "x86_64")
  environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  assert runtime.set_cpu_kernel_flag(environ)
  assert environ["XLA_FLAGS"] == (
    "--xla_force_host_platform_device_count=8 " + runtime.CPU_KERNEL_FLAG
  )
  assert not runtime.set_cpu_kernel_flag(environ)  # already there: not twice
  own = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="}  # the user's own value
  assert not runtime.set_cpu_kernel_flag(own)
  assert own["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type="
  keep = {runtime.KEEP_XLA_DEFAULTS: "1"}
  assert not runtime.set_cpu_kernel_flag(keep) and "XLA_FLAGS" not in keep


def test_the_cli_sets_it_for_inference_commands_only(monkeypatch, tmp_path, capsys):
  import importlib

  cli = importlib.import_module("landmark_jax.cli.main")  # the module, not `cli.main`
  calls = []
  monkeypatch.setattr(cli.runtime, "set_cpu_kernel_flag", lambda: calls.append(1))
  missing = str(tmp_path / "missing")
  for argv, sets in [
    (["recognize", "--checkpoint", missing, "--index", missing, "p.jpg"], True),
    (["embed", "--checkpoint", missing, "--out", missing], True),
    (["benchmark", "index", "--sizes", "0"], None),  # refused while parsing
    (["train", "--config", "nope", "--workdir", missing], False),
    (["demo", "--workdir", missing, "nope=1"], False),
  ]:
    calls.clear()
    try:
      status = cli.main(argv)
    except SystemExit as e:
      status = e.code
    assert status == 2, argv
    assert calls == ([1] if sets else []), argv
  assert cli._infers_only(cli.build_parser().parse_args(["benchmark", "compare"]))
  assert not cli._infers_only(cli.build_parser().parse_args(["benchmark", "train"]))


@pytest.mark.parametrize("version, machine", [("0.11.0", "x86_64"), ("0.10.2", "aarch64")])
def test_not_where_it_was_not_measured(monkeypatch, version, machine):
  monkeypatch.setattr(runtime, "_jaxlib_version", lambda: version)
  monkeypatch.setattr(platform, "machine", lambda: machine)
  environ = {}
  assert not runtime.set_cpu_kernel_flag(environ) and environ == {}


def _recognize(trained_dir, index, photo, *cache_args, cache_home):
  # Without the suite's own cache settings (its folder, its minimum compile time): the
  # command's.
  env = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))
  }
  env["LANDMARK_JAX_CACHE"] = str(cache_home)
  # JAX's own event around each backend compilation, counted in the child process.
  script = textwrap.dedent("""
      import sys
      import jax.monitoring
      names = []
      jax.monitoring.register_event_duration_secs_listener(
          lambda event, seconds, **kw: names.append(kw.get("fun_name")) if event ==
          "/jax/core/compile/backend_compile_duration" else None)
      jax.monitoring.register_event_listener(
          lambda event, **kw: names.append("hit") if event ==
          "/jax/compilation_cache/cache_hits" else None)
      from landmark_jax.cli.main import main
      status = main(sys.argv[1:])
      print("CACHE_HITS", names.count("hit"))
      sys.exit(status)
  """)
  result = subprocess.run(
    [
      sys.executable,
      "-c",
      script,
      "recognize",
      "--checkpoint",
      str(trained_dir),
      "--index",
      str(index),
      str(photo),
      *cache_args,
    ],
    capture_output=True,
    text=True,
    env=env,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-2000:]
  return int(result.stdout.split("CACHE_HITS")[-1])


def test_recognize_fills_the_cache_and_the_next_start_loads_from_it(
  trained, tiny_trained, index_dir, tmp_path
):
  from landmark_jax.data import source_for

  photo = source_for(trained.config.data, "test", trained.label_map).paths[0]
  workdir = tiny_trained[0]
  home = tmp_path / "home"
  # The default folder: beside the demo dataset, in the user cache.
  assert _recognize(workdir, index_dir / "index", photo, cache_home=home) == 0
  default = home / "xla"
  entries = sorted(p.name for p in default.iterdir())
  assert any(name.startswith("jit__forward") for name in entries), entries
  assert _recognize(workdir, index_dir / "index", photo, cache_home=home) >= 1
  # A folder of one's own; and none at all.
  own = tmp_path / "own"
  _recognize(workdir, index_dir / "index", photo, "--compilation-cache", str(own), cache_home=home)
  assert any(p.name.startswith("jit__forward") for p in own.iterdir())
  before = sorted(p.name for p in default.iterdir())
  assert (
    _recognize(
      workdir, index_dir / "index", photo, "--no-compilation-cache", cache_home=tmp_path / "unused"
    )
    == 0
  )
  assert not (tmp_path / "unused" / "xla").exists()
  assert sorted(p.name for p in default.iterdir()) == before


def test_a_cache_folder_that_cannot_be_made_means_no_cache(tmp_path):
  """In a fresh interpreter (the suite's own cache is set here): a path under a file."""
  blocker = tmp_path / "a-file"
  blocker.write_text("")
  env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
  result = subprocess.run(
    [
      sys.executable,
      "-c",
      "import sys; from landmark_jax import runtime; "
      "print(runtime.enable_compilation_cache(sys.argv[1]))",
      str(blocker / "xla"),
    ],
    capture_output=True,
    text=True,
    env=env,
    timeout=60,
  )
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "None" and blocker.is_file()


def test_the_demo_that_benchmark_compare_runs_trains_without_the_flag_it_added(monkeypatch):
  from landmark_jax.benchmarks.compare import demo_environment

  monkeypatch.setattr(runtime, "_jaxlib_version", lambda: "0.10.2")
  monkeypatch.setattr(platform, "machine", lambda: "x86_64")
  environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8", "HOME": "/h"}
  assert runtime.set_cpu_kernel_flag(environ)  # what `benchmark compare`'s start does
  # The demo's process gets the environment as `landmark-jax demo` would have it.
  assert demo_environment(environ) == {
    "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
    "HOME": "/h",
  }
  # A flag the user set themselves is theirs: `landmark-jax demo` would train with it too.
  own = {"XLA_FLAGS": runtime.CPU_KERNEL_FLAG}
  assert not runtime.set_cpu_kernel_flag(own)
  assert demo_environment(own) == own
