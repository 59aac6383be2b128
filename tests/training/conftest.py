"""Fixtures of tests/training; the helpers themselves live in training_support (importable by name)."""

from training_support import con, synthetic, synthetic_split

__all__ = ["con", "synthetic", "synthetic_split"]
