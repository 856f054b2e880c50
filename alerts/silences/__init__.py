"""Silences: label matchers with an end time and a reason, as Alertmanager has them.

- rules (pure): matchers, silences, what a silence covers, what a silence must say
"""
