# SPDX-License-Identifier: Apache-2.0
"""Checks of the deployment artefacts, the CI workflows and the supply chain."""
