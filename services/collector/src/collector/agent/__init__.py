"""The host agent, `python -m collector agent`: reports the machine it runs on to a collector."""
