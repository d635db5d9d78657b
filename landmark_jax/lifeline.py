"""A child command that stops when the program that started it dies.

`landmark-jax recipe` runs each step as a child process. A recipe ended by SIGKILL (`kill
-9`, the out-of-memory killer) cannot pass anything on, and its running `train` would go on
alone: the next run of the recipe would then start a second `train` writing the same
checkpoints. So the recipe names itself in ``LANDMARK_JAX_STOP_WITH_PARENT``, and the
child asks Linux for a SIGTERM when its parent dies (``PR_SET_PDEATHSIG``): `train`
checkpoints and stops as on any SIGTERM, the other steps end. Elsewhere (no prctl) it does
nothing; SLURM's job step ends every process of a killed task anyway.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

STOP_WITH_PARENT = "LANDMARK_JAX_STOP_WITH_PARENT"  # the parent's pid
# Set by the recipe too: the step a command runs as. Its own "what to run next" advice is
# then left out, the recipe runs what comes next (read by `cli.train`, a leaf's constant so
# that reading it imports nothing of the recipe).
RECIPE_STEP = "LANDMARK_JAX_RECIPE_STEP"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def stop_with_parent(environ=os.environ) -> bool:
  """If `environ` names this process's parent, have a SIGTERM sent here when it dies.
  True when armed. Call it before anything starts threads (the death signal follows the
  thread that forked this process, the parent's main one)."""
  # Taken out, so that a process this one starts does not take this one's parent for its own.
  named = environ.pop(STOP_WITH_PARENT, "")
  if not named.isdigit() or not sys.platform.startswith("linux"):
    return False
  libc = ctypes.CDLL(None, use_errno=True)
  if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
    return False
  if os.getppid() != int(named):  # it died before the request was made
    os.kill(os.getpid(), signal.SIGTERM)
  return True
