"""Helpers every app uses, below them all: this package imports no app and nothing of `backend`."""
