"""Checks of the deployment artefacts, the CI workflows and the supply chain."""
