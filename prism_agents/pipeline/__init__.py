"""Stages of a run, the rollout loop, evaluation and compute accounting."""
