"""Reconciliation: a period's invoices and reported usage against Stripe's."""
