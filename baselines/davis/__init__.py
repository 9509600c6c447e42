"""DAVIS (Huang et al., ACCV 2024): visually guided sound separation with a generative model.

`model.DAVIS` is the avbench adapter (task `separate_audio`); `train` trains
its synthetic-world configuration (the same network, small). See checkpoint.py for
the official checkpoint files.
"""
