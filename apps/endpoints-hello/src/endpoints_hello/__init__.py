# SPDX-License-Identifier: Apache-2.0
"""The sample app: flows, schemas, settings and a thin main."""
