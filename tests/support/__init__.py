"""Helpers shared by the tests (not shipped in the ivr package)."""
