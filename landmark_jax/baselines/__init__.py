"""Baselines the paper compares against, on our backbone, so users can rerun the comparison."""
