"""From segment predictions to an utterance decision: the emotion-profile statistics and utterance classifiers,
the choices made without the test fold, and the eGeMAPS + SVM baseline."""
