"""Datasets: the loaders, image folders, and versions (manifests, digests, diffs)."""
