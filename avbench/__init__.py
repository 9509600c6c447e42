"""avbench: a benchmark and evaluation suite for sound-to-image models."""

__version__ = "0.1.0"
