"""Usage that went down after a rebuild of the raw data: Stripe's events for the hour are
cancelled by meter event adjustments and the new total sent under a new identifier, while
Stripe still allows it (24 hours); later, the excess is shown, not hidden."""

from __future__ import annotations

from datetime import date

from billing_engine.usage.tables import daily_usage, usage_hours
from tests.api import test_meters as meters
from tests.api.test_meters import flush, linked_org, nine, run_minutes, sample
from tests.support.fake_stripe import ADJUSTMENTS

# The engine reporting to the fake Stripe, on each backend we ship (test_meters' fixtures).
app = meters.app
fake = meters.fake


def rebuild_without(client, org: str, instance: str, minutes: int) -> None:
    """What a rebuild that found `instance`'s minutes bogus leaves: its rows gone, the day's
    rollup lower."""
    database = client.app.state.services.database  # type: ignore[attr-defined]
    with database.engine.begin() as conn:
        conn.execute(usage_hours.delete().where(usage_hours.c.org_id == org,
                                                usage_hours.c.instance_id == instance))
        conn.execute(daily_usage.update()
                     .where(daily_usage.c.org_id == org, daily_usage.c.day == date(2026, 11, 18))
                     .values(minutes=daily_usage.c.minutes - minutes))


def test_usage_that_went_down_within_a_day_is_cancelled_and_sent_again(app, admin, clock, fake):
    org = linked_org(app, admin, "cus_A")
    run_minutes(app, org, "i-1", nine(clock), 60)
    run_minutes(app, org, "i-2", nine(clock), 30)
    flush(app, admin)
    assert fake.totals_by_customer() == {"cus_A": 90}

    rebuild_without(app, org, "i-2", 30)
    clock.advance(hours=2)
    result = flush(app, admin)

    assert (result["enqueued"], result["sent"]) == (1, 1)
    [cancel] = fake.requests_to(ADJUSTMENTS)
    assert cancel.status == 200
    assert cancel.form["type"] == "cancel"
    assert cancel.form["event_name"] == "instance_minutes"
    assert cancel.form["cancel[identifier]"].startswith(f"usage-{org}-2026111809-v1-")
    assert fake.totals_by_customer() == {"cus_A": 60}
    assert [e["identifier"][:-9] for e in fake.meter_events] == [f"usage-{org}-2026111809-v2"]
    assert sample(app, "meter_event_adjustments_total") == 1
    assert sample(app, "usage_meter_overreported_seconds") == 0
    assert flush(app, admin)["enqueued"] == 0  # settled: nothing more to correct


def test_usage_that_went_down_after_stripes_24_hours_is_shown_not_hidden(app, admin, clock, fake):
    org = linked_org(app, admin, "cus_A")
    run_minutes(app, org, "i-1", nine(clock), 60)
    run_minutes(app, org, "i-2", nine(clock), 30)
    flush(app, admin)

    clock.advance(hours=25)
    rebuild_without(app, org, "i-2", 30)
    result = flush(app, admin)

    assert result["enqueued"] == 0
    assert fake.requests_to(ADJUSTMENTS) == []
    assert fake.totals_by_customer() == {"cus_A": 90}  # still billed: a credit gives it back
    assert sample(app, "usage_meter_overreported_seconds") == 30 * 60
