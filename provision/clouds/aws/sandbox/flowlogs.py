"""Fidelity family for E1 (#12): filled in by its owner."""

from __future__ import annotations
