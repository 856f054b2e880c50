"""What the concepts' HTTP contracts share: field types, and answers any route with a body gives.

- `Timestamp`: a time as the API has always written it, `datetime.isoformat()`
  (`2026-11-18T12:00:00+00:00`), documented as an RFC 3339 date-time.
- `Text`: free text from a caller, refused (422) when it holds a NUL or another control
  character but tab and line breaks, or half of a UTF-16 surrogate pair: PostgreSQL can store
  neither, and no label, name or comment needs one.
- `Identifier`: an id in a path (an alert's fingerprint, a silence's id, an org's id): at most
  200 characters, none of them a control character or a slash.
- `BODY_ERRORS`: a body FastAPI cannot parse at all (a number too long to read) answers 400
  before any field is looked at; every route that takes a body declares it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, PlainSerializer, WithJsonSchema

from billing_core.http import ErrorBody, error_responses

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
IDENTIFIER_PATTERN = r"^[^\x00-\x1f\x7f/]+$"


def _storable_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain NUL or other control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (a lone surrogate is not)") from None
    return value


Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Text = Annotated[str, AfterValidator(_storable_text)]


def identifier(description: str) -> Any:
    """A path parameter naming one thing."""
    return Path(description=description, min_length=1, max_length=200,
                pattern=IDENTIFIER_PATTERN)


BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body cannot be parsed at all"},
    **error_responses(422),
}
