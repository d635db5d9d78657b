"""Benchmarks behind `landmark-jax benchmark …`: each compares against a baseline measured in
the same run and reports ratios; none of them asserts a wall-clock threshold."""
