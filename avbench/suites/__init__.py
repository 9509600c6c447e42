"""Suites: versioned specs, their hashed manifests, and the builders that derive the manifests."""
