"""The demo behind make run: seeded orgs, simulated instances, clients and Stripe deliveries."""
