"""Suites, manifests, audio and the stream of ready items."""
