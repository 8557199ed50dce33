"""The other methods under the same folds and run layout: LC+W (``emorefine lcw``) and MLEE (``emorefine mlee``)."""
