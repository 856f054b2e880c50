"""Throttling: run or pause per instance (continuous run, daily cap, idle), and daily counters."""
