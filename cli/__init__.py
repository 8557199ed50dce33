"""The ``emorefine`` command line: thin click commands over :mod:`emotion_refinery`."""
