"""Verify a Stripe delivery with the official library and say why it was refused."""

from __future__ import annotations

import time
from enum import StrEnum

import stripe

from billing_core.errors import BadRequest

TOLERANCE_SECONDS = 300
SIGNATURE_HEADER = "Stripe-Signature"


class SignatureFailure(StrEnum):
    MISSING = "missing"
    INVALID = "invalid"
    STALE = "stale"
    FUTURE = "future"


class SignatureRejected(BadRequest):
    code = "invalid_signature"

    def __init__(self, failure: SignatureFailure, message: str) -> None:
        super().__init__(SIGNATURE_HEADER, f"{failure.value}: {message}")
        self.failure = failure


def verify(payload: bytes, header: str | None, secret: str, *, now: float | None = None) -> None:
    """Raise SignatureRejected unless `header` signs `payload` with `secret` and its signed
    timestamp is within 300 s of `now` (the wall clock, as the library's own age check uses), in
    either direction.

    The library checks the signature before the timestamp, so a delivery refused for its age
    carries a good signature; asking again without the age check tells the two apart without
    reading the library's messages. The library checks only age: a timestamp in the future would
    pass, and a signature dated a day ahead could be replayed for a day, so we check that side."""
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
    signed_at = signed_timestamp(header)
    current = time.time() if now is None else now
    if signed_at is not None and signed_at - current > TOLERANCE_SECONDS:
        raise SignatureRejected(
            SignatureFailure.FUTURE,
            f"signed timestamp is more than {TOLERANCE_SECONDS} s in the future",
        )


def signed_timestamp(header: str) -> int | None:
    """The `t=` of a Stripe-Signature header (the first, as the library reads it)."""
    for item in header.split(","):
        parts = item.split("=", 2)
        if parts[0] == "t" and len(parts) > 1:  # read as the library reads it
            try:
                return int(parts[1])
            except ValueError:
                return None
    return None
