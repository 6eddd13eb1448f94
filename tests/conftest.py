"""Fixtures shared by the whole test suite."""
