"""Exceptions genprior raises for bad input: one clear message, never a stack of unrelated errors."""


class GenpriorError(Exception):
    """Base class of every error genprior raises on purpose."""


class CheckpointError(GenpriorError):
    """A checkpoint file is missing, truncated, of an unknown format, or does not match its architecture."""


class UnsafePickleError(CheckpointError):
    """A pickle asked for a global that genprior does not allow; nothing from it was executed."""


class DownloadError(GenpriorError):
    """A model file could not be downloaded or failed its hash check."""
