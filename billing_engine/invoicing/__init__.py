"""Invoicing: invoices when a period closes, credits applied to them."""
