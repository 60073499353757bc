"""Assembling and running the service: lifecycle, logging and the server runners."""
