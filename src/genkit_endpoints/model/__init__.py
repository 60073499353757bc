# SPDX-License-Identifier: Apache-2.0
"""Calling models: the call policy around Genkit, provider choice and the offline model."""
