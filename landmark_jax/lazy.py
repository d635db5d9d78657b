"""Package namespaces whose names are imported on first use.

A package's ``__init__`` that imported its modules eagerly would load all of them for any one
of them: ``import landmark_jax.index.config`` would bring ScaNN and JAX, and ``from
landmark_jax import Recognizer`` the training loop. With `lazy_exports`, the package lists
its public names and each is imported when first looked up.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping


def lazy_exports(
  package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
  """``__getattr__`` and ``__dir__`` for `package`: `exports` maps each public name to the
  module that defines it (``".config"``, relative to the package, or an absolute name); a
  name equal to that module's own last component is the module itself."""

  def __getattr__(name: str) -> Any:
    if name not in exports:
      raise AttributeError(f"module {package!r} has no attribute {name!r}")
    module = importlib.import_module(exports[name], package)
    value = module if module.__name__.rsplit(".", 1)[-1] == name else getattr(module, name)
    setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
    return value

  def __dir__() -> list[str]:
    return sorted(exports)

  return __getattr__, __dir__
