"""What the alerts API takes and answers about incidents."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from alerts.api.contract import Text, Timestamp

Severity = Literal["P0", "P1", "P2"]
Status = Literal["investigating", "identified", "monitoring"]


class IncidentIn(BaseModel):
    severity: Severity
    title: Text = Field(min_length=1, max_length=200)
    impact: Text = Field(min_length=1, max_length=500, description="one line: who is hurt, how")
    commander: Text = Field(min_length=1, max_length=200,
                            description="a person of the on-call policy, an email, or a name")
    fingerprints: list[Text] = Field(default_factory=list, max_length=50,
                                     description="the alerts it is declared from, if any")


class UpdateIn(BaseModel):
    text: Text = Field(min_length=1, max_length=4000)
    status: Status | None = Field(default=None, description="a new status, if it changed")
    severity: Severity | None = Field(default=None, description="a new severity: the "
                                                                "stakeholders it names are told")
    commander: Text | None = Field(default=None, min_length=1, max_length=200,
                                   description="a new commander (a hand-over)")
    kind: Literal["update", "note"] = Field(
        default="update", description="an update goes to the channel and resets the update "
                                      "clock; a note only goes to the timeline")


class ResolveIn(BaseModel):
    summary: Text = Field(min_length=1, max_length=4000,
                          description="what fixed it, in a sentence or two")


class PostmortemIn(BaseModel):
    text: Text = Field(min_length=1, max_length=200_000, description="the post-mortem, Markdown")


class TaskOut(BaseModel):
    key: str
    title: str
    due_at: Timestamp
    done_at: Timestamp | None
    done_by: str | None


class EntryOut(BaseModel):
    at: Timestamp
    kind: str
    who: str
    text: str


class IncidentOut(BaseModel):
    id: int
    key: str = Field(description="INC-<id>")
    title: str
    severity: str
    impact: str
    commander: str
    status: str
    fingerprints: list[str]
    declared_at: Timestamp
    declared_by: str
    last_update_at: Timestamp
    next_update_due: Timestamp | None = Field(description="when the commander owes the next "
                                                          "update; null once resolved")
    resolved_at: Timestamp | None
    resolved_by: str | None
    console_url: str


class IncidentDetail(IncidentOut):
    timeline: list[EntryOut] = Field(description="oldest first")
    tasks: list[TaskOut] = Field(description="the post-incident checklist (after resolution)")


class IncidentList(BaseModel):
    incidents: list[IncidentOut] = Field(description="newest first")


class PostmortemOut(BaseModel):
    incident_id: int
    markdown: str
    edited_by: str | None = Field(description="null: drafted from data just now")
    edited_at: Timestamp | None
