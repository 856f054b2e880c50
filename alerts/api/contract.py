"""What the alerts concepts' HTTP contracts share beyond `billing_core.http` (whose
`Timestamp`, `StorableText` and `ErrorBody` they use):

- `Identifier`: an id in a path (an alert's fingerprint, a silence's id, an org's id): at most
  200 characters, none of them a control character or a slash.
- `BODY_ERRORS`: what every route that takes a body may answer about it (422; a body FastAPI
  cannot read at all is a 422 too, through billing_core's handlers).
"""

from __future__ import annotations

from typing import Any

from fastapi import Path

from billing_core.http import StorableText, Timestamp, error_responses

__all__ = ["BODY_ERRORS", "IDENTIFIER_PATTERN", "Text", "Timestamp", "identifier"]

IDENTIFIER_PATTERN = r"^[^\x00-\x1f\x7f/]+$"
Text = StorableText


def identifier(description: str) -> Any:
    """A path parameter naming one thing."""
    return Path(description=description, min_length=1, max_length=200,
                pattern=IDENTIFIER_PATTERN)


BODY_ERRORS: dict[int | str, dict[str, Any]] = error_responses(422)
