"""The alerts process: evaluates rules and budgets, delivers email and Slack with runbook links."""

__version__ = "0.1.0"
