"""hubmirror: keep a private Amazon ECR registry in sync with an allowlist of public images."""

__version__ = "0.3.0"
