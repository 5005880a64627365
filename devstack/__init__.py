"""The local stack hubmirror's tests, demo and benchmarks run against (see stack.py)."""
