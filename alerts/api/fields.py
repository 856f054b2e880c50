"""Field types the alerts API's request and response schemas share.

- `Timestamp`: a time as the API has always written it, `datetime.isoformat()`
  (`2026-11-18T12:00:00+00:00`), documented as an RFC 3339 date-time.
- `Text`: free text from a caller, refused (422) when it holds a NUL or another control
  character but tab and line breaks: PostgreSQL cannot store a NUL, and no label, name or
  comment needs one.
- `Identifier`: an id in a path (an alert's fingerprint, a silence's id, an org's id): at most
  200 characters, none of them a control character or a slash.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, PlainSerializer, WithJsonSchema

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
IDENTIFIER_PATTERN = r"^[^\x00-\x1f\x7f/]+$"


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain NUL or other control characters")
    return value


Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Text = Annotated[str, AfterValidator(_no_control_characters)]


def identifier(description: str) -> Any:
    """A path parameter naming one thing."""
    return Path(description=description, min_length=1, max_length=200,
                pattern=IDENTIFIER_PATTERN)
