"""AV-GAS baseline: model.py (the avbench adapter), train.py (the synthetic-world trainer)."""
