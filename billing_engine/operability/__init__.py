"""Operability: the metrics, the probes and the housekeeping rounds."""
