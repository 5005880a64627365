"""The OCI distribution API client, split by concern: auth, retry, stream, client (its errors and
model are in :mod:`hubmirror.domain.registry`, where the pure steps may read them)."""
