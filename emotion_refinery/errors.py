"""Exceptions. Every error the library raises for bad input derives from :class:`EmorefineError`."""


class EmorefineError(Exception):
    """Root of every error raised by emorefine for bad input or state."""


class AudioError(EmorefineError):
    """An audio file cannot be used (undecodable, empty, too short, non-finite samples)."""


class CorpusError(EmorefineError):
    """A corpus folder or manifest cannot be read as the requested corpus."""


class RecordsError(EmorefineError):
    """A records directory is missing, incomplete, corrupt, or built with other settings."""


class NothingUsableError(RecordsError):
    """Every input of a corpus was skipped: there is nothing to build records from."""


class TrainingError(EmorefineError):
    """Training of a (round, fold) failed (a NaN or infinite loss or prediction); nothing of it was kept."""
