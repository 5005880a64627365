"""Copying images into the target: one loop for registries and OCI layouts, and the blob index."""
