"""What the tests, the demo and the benchmarks push into the registries: small OCI images made in
Python (``images``), signatures as cosign makes them (``cosign``), keyless ones from a Sigstore of the
tests' own (``sigstore``), and the benchmarks' workloads (``workload``). Imports only itself: it
speaks the registry API, whichever registry plays the part.
"""
