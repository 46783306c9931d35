"""Model architectures and the registry of shipped weights."""
