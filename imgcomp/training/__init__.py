"""Training: the rate-distortion trainer (`rd`), the fixed-rate families (`families`), what they share (`checkpoints`, `losses`)."""
