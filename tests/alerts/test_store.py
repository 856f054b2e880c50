"""The alerts store on SQLite and PostgreSQL: its own migrations, state, the notification log's
unique key, silences, acks and the outbox's claim / mark cycle."""

from __future__ import annotations

import json
import math
from datetime import timedelta

from sqlalchemy import create_engine, inspect

from alerts.delivery.message import NotificationKey
from alerts.delivery.store import QueuedMessage
from alerts.rules.model import Alert, AlertStatus, fingerprint
from alerts.silences.rules import Matcher, MatchOp
from alerts.store.migrate import downgrade, head_revision, schema_version
from alerts.store.repository import AlertStore
from billing_engine.db.migrate import schema_version as engine_schema_version
from tests.alerts.core import *  # noqa: F403

LABELS = {"alertname": "BillingEngineDown", "severity": "P0", "instance": "e1:8006"}


def an_alert(now, **overrides) -> Alert:
    base = dict(fingerprint=fingerprint(LABELS), alertname="BillingEngineDown", labels=LABELS,
                annotations={"summary": "down"}, status=AlertStatus.FIRING, active_at=now,
                last_evaluated_at=now, value=0.0, fired_at=now)
    base.update(overrides)
    return Alert(**base)  # type: ignore[arg-type]


def message_for(alert: Alert, receiver: str = "oncall-email") -> QueuedMessage:
    key = NotificationKey(alert.fingerprint, receiver, "firing", f"{alert.episode}/0")
    return QueuedMessage(kind="rule", receiver=receiver, channel="email",
                         keys=((key, alert.alertname),),
                         build_payload=lambda keys: json.dumps([k.receiver for k in keys]))


def test_alerts_migrations_keep_their_own_version_table_beside_the_engines(alerts_db_url):
    engine = create_engine(alerts_db_url.replace("postgresql+psycopg", "postgresql+psycopg"))
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"alembic_version", "alerts_alembic_version", "alert_states", "alert_outbox",
            "alert_notifications", "alert_silences", "alert_budget_notices", "orgs"} <= tables
    assert schema_version(alerts_db_url) == head_revision()
    engine_revision = engine_schema_version(alerts_db_url)
    downgrade(alerts_db_url, "base")
    assert schema_version(alerts_db_url) is None
    assert engine_schema_version(alerts_db_url) == engine_revision  # untouched
    engine = create_engine(alerts_db_url)
    left = set(inspect(engine).get_table_names())
    engine.dispose()
    assert "alert_states" not in left and "orgs" in left


def test_a_round_stores_alerts_and_queues_each_notification_key_once(store: AlertStore,
                                                                     alerts_clock):
    now = alerts_clock()
    alert = an_alert(now)
    first = store.apply_round(alerts=[alert], dropped=[], messages=[message_for(alert)], now=now)
    again = store.apply_round(alerts=[alert], dropped=[], messages=[message_for(alert)], now=now)
    assert len(first) == 1 and again == []
    [stored] = store.load_alerts()
    assert stored == alert
    assert store.notification_keys([alert.fingerprint]) == [
        NotificationKey(alert.fingerprint, "oncall-email", "firing", f"{alert.episode}/0")]
    item = store.outbox_item(first[0])
    assert item is not None and json.loads(item["payload"]) == ["oncall-email"]


def test_values_that_json_cannot_hold_survive_the_store(store: AlertStore, alerts_clock):
    now = alerts_clock()
    for value in (math.inf, -math.inf, 1e-300, 0.1 + 0.2):
        store.apply_round(alerts=[an_alert(now, value=value)], dropped=[], messages=[], now=now)
        assert store.get_alert(fingerprint(LABELS)).value == value  # type: ignore[union-attr]
    store.apply_round(alerts=[an_alert(now, value=math.nan)], dropped=[], messages=[], now=now)
    assert math.isnan(store.get_alert(fingerprint(LABELS)).value)  # type: ignore[union-attr,arg-type]


def test_an_ack_survives_the_rounds_of_its_episode_and_ends_with_it(store: AlertStore,
                                                                     alerts_clock):
    now = alerts_clock()
    alert = an_alert(now)
    store.apply_round(alerts=[alert], dropped=[], messages=[], now=now)
    acked = store.ack(alert.fingerprint, by="alice", now=now + timedelta(seconds=5))
    assert acked is not None and acked.acked_by == "alice"
    # a round that loaded the alert before the ack must not undo it
    store.apply_round(alerts=[alert], dropped=[], messages=[], now=now + timedelta(seconds=15))
    assert store.get_alert(alert.fingerprint).acked_by == "alice"  # type: ignore[union-attr]
    new_episode = an_alert(now + timedelta(hours=1))
    store.apply_round(alerts=[new_episode], dropped=[], messages=[], now=now + timedelta(hours=1))
    assert store.get_alert(alert.fingerprint).acked_at is None  # type: ignore[union-attr]


def test_a_dropped_pending_alert_is_deleted(store: AlertStore, alerts_clock):
    now = alerts_clock()
    pending = an_alert(now, status=AlertStatus.PENDING, fired_at=None)
    store.apply_round(alerts=[pending], dropped=[], messages=[], now=now)
    store.apply_round(alerts=[], dropped=[pending.fingerprint], messages=[], now=now)
    assert store.load_alerts() == []


def test_silences_are_listed_by_state_and_expire_on_request(store: AlertStore, alerts_clock):
    now = alerts_clock()
    silence = store.add_silence(matchers=[Matcher("severity", "P2|P3", MatchOp.REGEX)],
                                starts_at=now, expires_at=now + timedelta(hours=2),
                                comment="noisy during the load test", created_by="bob", now=now)
    assert [s.id for s in store.list_silences(state="active", now=now)] == [silence.id]
    assert silence.matchers == (Matcher("severity", "P2|P3", MatchOp.REGEX),)
    expired = store.expire_silence(silence.id, now=now + timedelta(minutes=1))
    assert expired is not None and expired.expires_at == now + timedelta(minutes=1)
    later = now + timedelta(minutes=2)
    assert store.list_silences(state="active", now=later) == []
    assert [s.id for s in store.list_silences(state="expired", now=later)] == [silence.id]
    assert store.expire_silence("no-such-id", now=later) is None


def test_a_claimed_message_is_invisible_to_others_until_its_lease_ends(store: AlertStore,
                                                                        alerts_clock):
    now = alerts_clock()
    item_id = store.enqueue(kind="test", receiver="oncall-email", channel="email",
                            payload="{}", now=now)
    lease = timedelta(seconds=60)
    [claimed] = store.claim_due(now=now, worker="a", lease=lease, limit=10)
    assert claimed.id == item_id
    assert store.claim_due(now=now, worker="b", lease=lease, limit=10) == []
    # worker a died without marking: b may take it once the lease is over
    [again] = store.claim_due(now=now + lease + timedelta(seconds=1), worker="b", lease=lease,
                              limit=10)
    assert again.id == item_id
    store.mark_sent(item_id, worker="a", now=now, attempts=1)  # a lost its claim: no effect
    assert store.outbox_item(item_id)["status"] == "pending"  # type: ignore[index]
    store.mark_sent(item_id, worker="b", now=now, attempts=1)
    assert store.outbox_item(item_id)["status"] == "sent"  # type: ignore[index]
    assert store.outbox_stats(now=now) == (0, 0.0)


def test_outbox_stats_count_waiting_messages_and_the_oldest_age(store: AlertStore,
                                                                alerts_clock):
    now = alerts_clock()
    store.enqueue(kind="test", receiver="r", channel="slack", payload="{}", now=now)
    store.enqueue(kind="test", receiver="r", channel="slack", payload="{}",
                  now=now + timedelta(seconds=30))
    assert store.outbox_stats(now=now + timedelta(seconds=90)) == (2, 90.0)


def test_purge_forgets_old_deliveries_but_never_waiting_messages(store: AlertStore,
                                                                 alerts_clock):
    now = alerts_clock()
    old = now - timedelta(days=100)
    alert = an_alert(old)
    [sent_id] = store.apply_round(alerts=[alert], dropped=[], messages=[message_for(alert)],
                                  now=old)
    [claimed] = store.claim_due(now=old, worker="w", lease=timedelta(seconds=60), limit=1)
    store.mark_sent(claimed.id, worker="w", now=old, attempts=1)
    waiting = store.enqueue(kind="test", receiver="r", channel="slack", payload="{}", now=old)
    recent = store.enqueue(kind="test", receiver="r", channel="slack", payload="{}", now=now)
    assert store.purge(before=now - timedelta(days=90)) == (1, 1)
    assert store.outbox_item(sent_id) is None
    assert store.outbox_item(waiting) is not None and store.outbox_item(recent) is not None
    assert store.notification_keys([alert.fingerprint]) == []
