"""Training, evaluation and experiment commands for the GAN Zoo."""
