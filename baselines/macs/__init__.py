"""MACS (Zhou et al., AAAI 2026): multi-source audio-to-image generation.

`model.MACS` is the avbench adapter (task `generate`); `train` trains its
synthetic-world configuration; `paper` holds the released configuration,
whose optional dependencies come with `pip install 'avbench[macs]'`.
"""
