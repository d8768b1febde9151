"""Typed errors. The library raises these; only the CLI prints them (one line) and exits."""

from __future__ import annotations


class EdgeclfError(Exception):
    """Base of every error a user can act on. The message names the thing, what was expected and the fix."""

    exit_code = 1


class UsageError(EdgeclfError):
    """A flag or argument that cannot work as given."""

    exit_code = 2


class DataError(EdgeclfError):
    """A data folder or image that cannot be used."""


class BundleError(EdgeclfError):
    """A bundle (model + manifest) that is missing, tampered with or inconsistent."""


class ModelError(EdgeclfError):
    """A model file that is not what it claims to be, or cannot be loaded safely."""


class RunError(EdgeclfError):
    """A training run directory that is incomplete or inconsistent."""


class SourceError(EdgeclfError):
    """A frame source (camera, video, folder, URL) that cannot be opened."""


class NotBuiltError(EdgeclfError):
    """A command whose implementation has not landed yet."""
