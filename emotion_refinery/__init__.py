"""emorefine: segment-based speech emotion recognition with emotion profile refinery.

Data flows one way: audio → features → records → datasets → models → rounds →
utterance classifier → report. The sub-packages follow it, and each imports only from
itself and those before it: :mod:`~emotion_refinery.util`, :mod:`~emotion_refinery.data`,
:mod:`~emotion_refinery.records`, :mod:`~emotion_refinery.models`, :mod:`~emotion_refinery.decision`,
:mod:`~emotion_refinery.outputs`, :mod:`~emotion_refinery.refine`, :mod:`~emotion_refinery.methods`.
:mod:`emotion_refinery.api` is the Python API (``from emotion_refinery import load``). The TFRecord
schemas live in :mod:`tf_records` and the command line in :mod:`cli`.
"""

from emotion_refinery.errors import EmorefineError

__version__ = "0.1.0"

__all__ = ["EmorefineError", "__version__", "load", "Predictor", "ExportedModel", "Prediction"]

_API = {"load": "emotion_refinery.api", "ExportedModel": "emotion_refinery.api",
        "Predictor": "emotion_refinery.outputs.inference", "Prediction": "emotion_refinery.outputs.inference"}


def __getattr__(name: str):
    """The Python API (:mod:`emotion_refinery.api`), imported when first used: ``from emotion_refinery import
    load``. The command line does not pay for it."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'emotion_refinery' has no attribute {name!r}")
