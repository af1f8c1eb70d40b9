"""The survey tests' fixtures live in support.survey (the call tests use them too)."""

from support.survey import cmn, db, ko, scripts  # noqa: F401  (pytest fixtures)
