"""Shipped synthetic-world weights of the avgas baseline (safetensors, sha256-pinned in ../model.py)."""
