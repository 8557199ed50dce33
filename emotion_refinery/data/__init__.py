"""Audio to features: decoding, the log-Mel front end and its settings, the corpora's adapters, the synthetic
corpus, annotator votes, planted label noise, folds, and the sequence features (openSMILE, spectrogram)."""
