"""The emotion profile refinery: its settings, the label-update rules, one fold's training, the executors that
run the trainings, and the rounds."""
