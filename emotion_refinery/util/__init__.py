"""Shared plumbing with no knowledge of the method: numeric ranges of the options, quiet TensorFlow logs,
worker processes, and the recognition of folders emorefine may overwrite."""
