"""Stripe: the API adapter and breaker, webhooks in, usage meter events out, reconciliation."""
