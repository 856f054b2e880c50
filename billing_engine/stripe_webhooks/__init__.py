"""Stripe webhooks: signature check, inbox, handlers, duplicate fast path."""

from billing_engine.stripe_webhooks.dedup import WebhookDedup
from billing_engine.stripe_webhooks.handler import (
    HANDLED_TYPES,
    AlreadyDone,
    Delivery,
    Outcome,
    StripeWebhooks,
    TransientFailure,
    WebhooksNotConfigured,
)
from billing_engine.stripe_webhooks.payloads import PayloadError
from billing_engine.stripe_webhooks.signature import (
    SIGNATURE_HEADER,
    SignatureFailure,
    SignatureRejected,
)

__all__ = [
    "HANDLED_TYPES",
    "SIGNATURE_HEADER",
    "AlreadyDone",
    "Delivery",
    "Outcome",
    "PayloadError",
    "SignatureFailure",
    "SignatureRejected",
    "StripeWebhooks",
    "TransientFailure",
    "WebhookDedup",
    "WebhooksNotConfigured",
]
