"""Tests that need no service: no PostgreSQL, Redis, browser or server of their own.

`make test-unit` runs them alone, in seconds; tests/conftest.py checks the services only
when a test outside this folder is collected."""
