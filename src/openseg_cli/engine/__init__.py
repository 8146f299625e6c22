"""Orchestration: the only package that imports Lightning (training, evaluation, prediction jobs)."""
