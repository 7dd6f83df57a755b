"""Grading (layer 6): build exercises from solutions, run the graded tests, print the score table.

``python -m tinyattn.grading --impl exercises|solutions [chNN ...]`` (also ``tinyattn grade``) prints one row
per graded test and last ``SCORE: earned/total``; the exit status is 0 iff earned == total.
"""
from .build import build, drift, make_stub
from .runner import Result, format_table

__all__ = ["build", "drift", "make_stub", "Result", "format_table"]
