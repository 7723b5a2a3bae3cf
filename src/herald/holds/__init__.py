"""Holds: who must not be contacted.

Suppression holds and their audit trail, agreement events, hold CSV files, opt-outs. May import
core and ``state``.
"""
