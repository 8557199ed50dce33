"""The TFRecord layer: schemas, the sharded atomic writer and the tf.data readers.

This package is the only code that knows how examples are laid out on disk. It
imports nothing from :mod:`emotion_refinery`.
"""
