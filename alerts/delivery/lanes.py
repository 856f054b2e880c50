"""Delivery lanes: pages never wait behind bulk mail (pure).

Every queued message has a priority; each lane is a worker with its own senders (its own SMTP
connection and Slack clients) that claims only its priorities, most urgent first:

- `pages` claims priority PAGE only: P0 and P1 alerts, escalations and incident messages. It
  has nothing else to do, so a page goes out as soon as it is queued, however long the rest of
  the outbox is (a busy month's first budget round queues hundreds of thousands of emails).
- `bulk` claims everything else, ALERT (P2, P3, test messages) before BULK (customer budget
  mail and support's budget lines), oldest first within a priority.
"""

from __future__ import annotations

from dataclasses import dataclass

PAGE = 0
ALERT = 1
BULK = 2
PAGE_SEVERITIES = frozenset({"P0", "P1"})


@dataclass(frozen=True)
class Lane:
    name: str
    priorities: tuple[int, ...]


PAGES = Lane("pages", (PAGE,))
BULK_LANE = Lane("bulk", (ALERT, BULK))
LANES = (PAGES, BULK_LANE)


def priority_for(kind: str, severities: set[str] | frozenset[str] | tuple[str, ...]) -> int:
    """A message's priority from its kind and the severities of the alerts it carries."""
    if kind in ("escalation", "incident"):
        return PAGE
    if kind == "budget":
        return BULK
    if kind == "rule" and PAGE_SEVERITIES & set(severities):
        return PAGE
    return ALERT
