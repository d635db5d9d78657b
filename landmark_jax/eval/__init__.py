"""Evaluation: the paper's metrics, reports, plots and the Revisited Oxford/Paris protocol."""
