"""Payments: attempts and refunds from Stripe's events, what support reads, retention."""
