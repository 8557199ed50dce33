"""What a run gives: report.md and its plots, predictions on new audio, and exported models from waveform to
decision."""
