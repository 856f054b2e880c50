"""The whole alerts schema over one engine.

`AlertStore` is every concept's store at once (each is a `Store` over the same engine, and
their methods do not overlap): the wiring module builds one and hands each service the part it
needs under that part's own type, so the evaluator sees an alert state store, the outbox worker
an outbox store, and so on. Tests use it the same way.
"""

from __future__ import annotations

from alerts.access.store import AuditStore
from alerts.budget.store import BudgetNoticeStore
from alerts.delivery.store import OutboxStore
from alerts.incidents.store import IncidentStore
from alerts.oncall.store import EscalationStore
from alerts.rules.store import AlertStateStore
from alerts.silences.store import SilenceStore

CONCEPT_STORES = (AlertStateStore, SilenceStore, OutboxStore, BudgetNoticeStore, AuditStore,
                  EscalationStore, IncidentStore)


class AlertStore(AlertStateStore, SilenceStore, OutboxStore, BudgetNoticeStore, AuditStore,
                 EscalationStore, IncidentStore):
    """Alert states and their history, silences, the notification log and outbox, budget
    notices, the audit log, escalations, incidents."""
