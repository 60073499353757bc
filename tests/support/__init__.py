"""Test support: real server processes and free ports."""
