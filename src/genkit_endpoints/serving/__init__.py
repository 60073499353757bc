# SPDX-License-Identifier: Apache-2.0
"""Assembling and running the service: lifecycle, logging and the server runners."""
