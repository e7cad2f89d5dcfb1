"""Exports of a processed book for people and other programs: `html` writes an offline reader view."""
