"""Shipped configs, found by name: ``load_config("tiny_cpu")`` / ``--config tiny_cpu``.

`default` is the paper's setup; every other config is `default` plus a few overrides.
"""
