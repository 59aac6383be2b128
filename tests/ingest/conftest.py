"""Fixtures of tests/ingest; the helpers themselves live in ingest_support (importable by name)."""

from ingest_support import _fresh_parse_cache, parse_text, real_dir

__all__ = ["_fresh_parse_cache", "parse_text", "real_dir"]
