# SPDX-License-Identifier: Apache-2.0
"""What every transport shares: the route table, running a flow, errors, request context
and readiness. Imports nothing else of the kit."""
