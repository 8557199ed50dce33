"""emorefine: segment-based speech emotion recognition with emotion profile refinery.

Data flows one way: audio → features → records → datasets → models → rounds →
utterance classifier → report. This package holds the method; the TFRecord
schemas live in :mod:`tf_records` and the command line in :mod:`cli`.
"""

from emotion_refinery.errors import EmorefineError

__version__ = "0.1.0"

__all__ = ["EmorefineError", "__version__"]
