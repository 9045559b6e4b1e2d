"""Pose and translation VQ-VAEs of the duet motion tokenizer (models, training, evaluation)."""
