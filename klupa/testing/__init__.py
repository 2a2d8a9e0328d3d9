"""Test support: real services on free loopback ports (a pytest plugin)."""
