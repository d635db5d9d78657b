"""The ``landmark-jax`` command line: one module per command group, each command a thin call
into the library, and one error boundary (`main`) that turns a user's mistake into one line
on stderr and exit status 2."""

from landmark_jax.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
