"""The HTTP side: the transport (pooled session, retries, rate limit, metrics) under the v1 API."""
