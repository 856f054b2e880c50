"""What the silences API takes and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from alerts.api.contract import Text, Timestamp

MatcherOp = Literal["=", "!=", "=~", "!~"]


class MatcherIn(BaseModel):
    name: Text = Field(min_length=1, max_length=100)
    value: Text = Field(max_length=1000)
    op: MatcherOp = "="


MatcherText = Annotated[Text, Field(max_length=1200, description='name=value, name!=value, '
                                                                 'name=~"re" or name!~"re"')]


class SilenceIn(BaseModel):
    matchers: list[MatcherIn | MatcherText] = Field(min_length=1, max_length=20)
    expires_at: datetime | None = None
    duration: Text | None = Field(default=None, max_length=40,
                                  description="instead of expires_at: 30m, 2h, 1d")
    starts_at: datetime | None = None
    comment: Text = Field(min_length=1, max_length=2000)
    created_by: Text | None = Field(
        default=None, max_length=200,
        description="a note of whom the silence is for; who made it is the credential's name")


class MatcherOut(BaseModel):
    name: str
    op: MatcherOp
    value: str


class SilenceOut(BaseModel):
    id: str
    matchers: list[MatcherOut]
    starts_at: Timestamp
    expires_at: Timestamp
    comment: str
    created_by: str
    created_at: Timestamp
    state: Literal["active", "pending", "expired"]


class SilenceList(BaseModel):
    state: Literal["active", "expired", "all"]
    silences: list[SilenceOut]
