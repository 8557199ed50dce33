"""emorefine: segment-based speech emotion recognition with emotion profile refinery.

Data flows one way: audio → features → records → datasets → models → rounds →
utterance classifier → report. This package holds the method; the TFRecord
schemas live in :mod:`tf_records` and the command line in :mod:`cli`.
"""

from emotion_refinery.errors import EmorefineError

__version__ = "0.1.0"

__all__ = ["EmorefineError", "__version__", "load", "Predictor", "ExportedModel", "Prediction"]

_API = {"load": "emotion_refinery.api", "ExportedModel": "emotion_refinery.api",
        "Predictor": "emotion_refinery.inference", "Prediction": "emotion_refinery.inference"}


def __getattr__(name: str):
    """The Python API (:mod:`emotion_refinery.api`), imported when first used: ``from emotion_refinery import
    load``. The command line does not pay for it."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'emotion_refinery' has no attribute {name!r}")
