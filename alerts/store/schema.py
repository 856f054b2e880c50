"""Every table of the alerts process, on one MetaData: what its own Alembic migrations
(alerts/migrations, version table `alerts_alembic_version`) create beside the engine's tables,
and what the schema drift test compares the migrated database with.

Each concept declares its tables in its store:

- rules: `alert_states`, where each alert instance stands (alerts.rules.store)
- delivery: `alert_notifications`, the notification log, and `alert_outbox`
  (alerts.delivery.store)
- silences: `alert_silences` (alerts.silences.store)
- budget: `alert_budget_notices`, once per org, period and threshold (alerts.budget.store)
- access: `alert_audit`, the audit log of changes (alerts.access.store)
- rules: `alert_episodes`, the history of every episode that fired (alerts.rules.store)
- incidents: `alert_incidents`, `alert_incident_events`, `alert_incident_tasks`
  (alerts.incidents.store)
- oncall: `alert_escalations`, who was told of each alert episode at which step
  (alerts.oncall.store)
"""

from __future__ import annotations

from alerts.access.store import alert_audit
from alerts.budget.store import alert_budget_notices
from alerts.delivery.store import alert_notifications, alert_outbox
from alerts.incidents.store import alert_incident_events, alert_incident_tasks, alert_incidents
from alerts.oncall.store import alert_escalations
from alerts.rules.store import alert_episodes, alert_states
from alerts.silences.store import alert_silences
from alerts.store.database import metadata

__all__ = ["alert_audit", "alert_budget_notices", "alert_episodes", "alert_escalations",
           "alert_incident_events", "alert_incident_tasks", "alert_incidents",
           "alert_notifications", "alert_outbox", "alert_silences", "alert_states", "metadata"]
