# SPDX-License-Identifier: Apache-2.0
"""Test support: real server processes and free ports."""
