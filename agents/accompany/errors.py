"""The one error type of ``agents.accompany``: bad input, reported with the file and the problem."""
from __future__ import annotations


class AccompanyError(ValueError):
    """An input (music, leader, policy, output folder) cannot be used; the message names it."""
