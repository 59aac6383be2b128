"""Errors that hybridops reports to people: the CLI prints them as one line, without a traceback."""

from __future__ import annotations


class HybridopsError(Exception):
    """An expected, actionable failure; its message says what went wrong and what to do."""


class SourceError(HybridopsError):
    """A source file or folder is missing or unusable."""


class UsageError(HybridopsError):
    """The user asked for something malformed (bad option value, unknown name)."""
