# SPDX-License-Identifier: Apache-2.0
"""API keys, address rules, the guarded image fetcher and secret masking in logs."""
