"""The OCI distribution API client, split by concern: errors, model, auth, retry, stream, client."""
