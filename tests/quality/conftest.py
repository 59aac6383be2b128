"""Fixtures of tests/quality; the helpers themselves live in quality_support (importable by name)."""

from quality_support import broken_source, parse_rows, real_landed, real_refs, refs

__all__ = ["broken_source", "parse_rows", "real_landed", "real_refs", "refs"]
