# SPDX-License-Identifier: Apache-2.0
"""End-to-end tests: real server processes on free loopback ports."""
