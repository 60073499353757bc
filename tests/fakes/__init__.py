# SPDX-License-Identifier: Apache-2.0
"""Local fakes standing in for true boundaries (upstream LLM providers)."""
