"""Fixtures of tests/features; the helpers themselves live in features_support (importable by name)."""

from features_support import con, january_frames

__all__ = ["con", "january_frames"]
