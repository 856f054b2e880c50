"""Verify a Stripe delivery with the official library and say why it was refused."""

from __future__ import annotations

from enum import StrEnum

import stripe

from billing_core.errors import BadRequest

TOLERANCE_SECONDS = 300
SIGNATURE_HEADER = "Stripe-Signature"


class SignatureFailure(StrEnum):
    MISSING = "missing"
    INVALID = "invalid"
    STALE = "stale"


class SignatureRejected(BadRequest):
    code = "invalid_signature"

    def __init__(self, failure: SignatureFailure, message: str) -> None:
        super().__init__(SIGNATURE_HEADER, f"{failure.value}: {message}")
        self.failure = failure


def verify(payload: bytes, header: str | None, secret: str) -> None:
    """Raise SignatureRejected unless `header` signs `payload` with `secret` within 300 s.

    The library checks the signature before the timestamp, so a delivery refused for its age
    carries a good signature; asking again without the age check tells the two apart without
    reading the library's messages."""
    if not header or not header.strip():
        raise SignatureRejected(SignatureFailure.MISSING, "header is required")
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, None)
        except stripe.SignatureVerificationError:
            raise SignatureRejected(
                SignatureFailure.INVALID,
                "does not sign this body with the configured STRIPE_WEBHOOK_SECRET",
            ) from None
        raise SignatureRejected(
            SignatureFailure.STALE,
            f"signed timestamp is more than {TOLERANCE_SECONDS} s old",
        ) from None
    except UnicodeDecodeError:
        raise SignatureRejected(SignatureFailure.INVALID, "body is not UTF-8") from None
