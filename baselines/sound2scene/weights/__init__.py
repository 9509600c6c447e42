"""Shipped synthetic-world weights of the sound2scene baseline (safetensors, sha256-pinned in ../model.py)."""
