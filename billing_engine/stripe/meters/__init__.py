"""Usage reporting: closed hours into the outbox, the outbox out to Stripe's meter events."""
