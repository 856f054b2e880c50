"""Subscriptions: Stripe subscription states per org, and which one speaks for the org."""
