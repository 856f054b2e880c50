"""Customers (orgs): who is billed, on which plan, linked to which Stripe customer."""
