"""duet: dance accompaniment as a reinforcement-learning problem."""
__version__ = "0.1.0"
