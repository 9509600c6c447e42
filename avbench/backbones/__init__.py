"""Feature extractors (backbones) and their loaders."""
