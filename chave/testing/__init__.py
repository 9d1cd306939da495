"""Helpers shared by the test suites of every app (not imported by the service itself)."""
