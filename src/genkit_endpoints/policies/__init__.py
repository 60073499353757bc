# SPDX-License-Identifier: Apache-2.0
"""Rate limits, the response cache and the circuit breaker, in memory or on Redis."""
