"""API keys, address rules, the guarded image fetcher and secret masking in logs."""
