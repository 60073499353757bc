"""End-to-end tests: real server processes on free loopback ports."""
