"""The model interface and the sanity models."""
