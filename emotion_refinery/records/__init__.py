"""What is stored: building the sharded TFRecords and their manifest, reading them as ``tf.data`` datasets
(with augmentation and speaker normalisation), the leakage audit, and the layout of a run directory."""
