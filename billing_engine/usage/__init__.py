"""Usage: heartbeats metered into instance-minutes, daily rollups, instances and their usage."""
