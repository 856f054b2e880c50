"""The billing engine: meters instance heartbeats into billable instance-minutes and serves the
billing, usage and customer views an operator needs, with Prometheus metrics."""

__version__ = "0.1.0"
