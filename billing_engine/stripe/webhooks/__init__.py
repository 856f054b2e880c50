"""Stripe webhooks: signature check, inbox, effects of each event type, duplicate fast path."""
