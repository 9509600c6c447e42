"""The standard suite manifests; installed as the package `avbench.manifests`."""
