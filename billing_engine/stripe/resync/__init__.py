"""Resync one org from Stripe on demand: its customer, subscriptions and latest invoices."""
