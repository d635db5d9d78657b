"""Shipped configs, found by name: ``load_config("tiny_cpu")`` / ``--config tiny_cpu``
(`landmark_jax.config.config_names` lists them).

`default` is the paper's setup; every other config is `default` plus a few overrides.
"""
