"""Credits applied in Stripe: each credit we grant becomes a customer balance transaction."""
