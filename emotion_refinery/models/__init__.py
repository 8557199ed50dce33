"""Keras models and what trains them beyond ``fit``: the backbones, emorefine's layers, the distribution
strategy, LC+W's label correction and MLEE's existence losses."""
