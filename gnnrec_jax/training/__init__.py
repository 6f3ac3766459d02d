"""Training: the fit loop, losses, negative sampling, checkpoints and the workdir a run writes."""
