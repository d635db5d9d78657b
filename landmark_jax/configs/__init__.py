"""Shipped configs, found by name: ``load_config("tiny_cpu")`` / ``--config tiny_cpu``.

`default` is the paper's setup; every other config is `default` plus a few overrides.
"""

import pkgutil


def config_names() -> list[str]:
  """The configs shipped with the library (this package's modules). Cheap: nothing is
  imported, so ``landmark-jax --help`` can list them."""
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
