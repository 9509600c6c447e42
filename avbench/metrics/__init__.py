"""Metrics: pure functions of features or waveforms, wrapped as plugins."""
