"""Credits reach Stripe as customer balance transactions, so the invoice the customer pays there
is the one we wrote: sent once per credit, retried while Stripe is unavailable, never twice."""

from __future__ import annotations

from fastapi.testclient import TestClient

from billing_engine.customers.tables import orgs
from billing_engine.invoicing.tables import credits

BALANCE = "/v1/customers/cus_a/balance_transactions"


def make_org(client: TestClient, admin: dict[str, str], database, org: str,
             customer: str | None) -> None:
    answer = client.put(f"/admin/orgs/{org}", headers=admin,
                        json={"name": org, "email": f"{org}@x.example", "plan": "base_usage"})
    assert answer.status_code in (200, 201), answer.text
    with database.engine.begin() as conn:
        conn.execute(orgs.update().where(orgs.c.id == org).values(stripe_customer_id=customer))


def grant(client: TestClient, admin: dict[str, str], org: str, cents: int = 500,
          key: str | None = None) -> dict:
    headers = {**admin, **({"Idempotency-Key": key} if key else {})}
    answer = client.post("/admin/credits", headers=headers,
                         json={"org_id": org, "amount_cents": cents, "reason": "TICKET-9 outage"})
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def test_a_granted_credit_lowers_the_invoice_the_customer_pays_in_stripe(
        engine, admin, pg_database, fake):
    fake.support.add_customer("cus_a")
    make_org(engine, admin, pg_database, "org_a", "cus_a")

    credit = grant(engine, admin, "org_a", 500)

    assert credit["stripe_status"] == "sent"
    assert credit["stripe_balance_transaction_id"].startswith("cbtxn_")
    [request] = fake.requests_to(BALANCE)
    assert request.form["amount"] == "-500" and request.form["currency"] == "usd"
    assert request.form["metadata[credit_id]"] == str(credit["id"])
    assert request.headers["idempotency-key"] == f"credit:{credit['id']}:cus_a"
    invoice = fake.support.create_invoice(customer="cus_a", total=2000, created=1_767_225_600)
    assert (invoice["total"], invoice["amount_due"]) == (2000, 1500)
    assert fake.support.balance_of("cus_a") == 0
    listed = engine.get("/v1/credits", params={"org_id": "org_a"}, headers=admin).json()
    assert listed["credits"][0]["stripe_status"] == "sent"


def test_a_credit_stripe_could_not_take_is_retried_later_and_applied_once(
        engine, admin, pg_database, fake, clock):
    fake.support.add_customer("cus_a")
    make_org(engine, admin, pg_database, "org_a", "cus_a")
    fake.fail_next(1, status=503, path=BALANCE)

    credit = grant(engine, admin, "org_a", 700)

    assert credit["stripe_status"] == "pending" and "HTTP 503" in credit["stripe_last_error"]
    services = engine.app.state.services
    assert services.stripe_credits.send_due() == 0  # not due before its backoff
    clock.advance(seconds=31)
    assert services.stripe_credits.send_due() == 1
    assert fake.support.balance_of("cus_a") == -700
    # A sender that died after Stripe answered leaves it pending: the retry sends the same
    # Idempotency-Key and Stripe answers with the transaction it already made.
    with pg_database.engine.begin() as conn:
        conn.execute(credits.update().values(stripe_status="pending"))
    assert services.stripe_credits.send_due() == 1
    assert fake.support.balance_of("cus_a") == -700
    assert len({r.headers["idempotency-key"] for r in fake.requests_to(BALANCE)}) == 1
    registry = services.metrics.registry
    services.stripe_credits.refresh_gauges()
    assert registry.get_sample_value("stripe_credits", {"status": "sent"}) == 1
    assert registry.get_sample_value("stripe_credits_sent_total", {"outcome": "retry"}) == 1


def test_a_credit_stripe_refuses_is_failed_not_retried_and_a_replayed_grant_sends_nothing(
        engine, admin, pg_database, fake, clock):
    make_org(engine, admin, pg_database, "org_gone", "cus_gone")  # no such customer in Stripe

    credit = grant(engine, admin, "org_gone", 300, key="once")
    again = grant(engine, admin, "org_gone", 300, key="once")

    assert credit["stripe_status"] == again["stripe_status"] == "failed"
    assert "No such customer" in credit["stripe_last_error"]
    clock.advance(hours=2)
    assert engine.app.state.services.stripe_credits.send_due() == 0
    assert len(fake.requests_to("/v1/customers/cus_gone/balance_transactions")) == 1

    # The customer is fixed in Stripe: an admin sends it again, once.
    fake.support.add_customer("cus_gone")
    retried = engine.post(f"/admin/credits/{credit['id']}/stripe-retry", headers=admin)
    assert retried.status_code == 200, retried.text
    assert retried.json()["stripe_status"] == "sent"
    assert fake.support.balance_of("cus_gone") == -300
    keys = [r.headers["idempotency-key"] for r in fake.requests_to(
        "/v1/customers/cus_gone/balance_transactions")]
    assert keys == [f"credit:{credit['id']}:cus_gone", f"credit:{credit['id']}:cus_gone:retry1"]
    again = engine.post(f"/admin/credits/{credit['id']}/stripe-retry", headers=admin)
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "credit_id"
    assert engine.post("/admin/credits/999999/stripe-retry", headers=admin).status_code == 404


def test_a_credit_waits_for_the_org_to_be_linked_to_a_stripe_customer(
        engine, admin, pg_database, fake):
    make_org(engine, admin, pg_database, "org_new", None)
    credit = grant(engine, admin, "org_new", 900)
    assert credit["stripe_status"] == "pending" and credit["stripe_last_error"] is None
    assert fake.requests == []

    fake.support.add_customer("cus_new")
    with pg_database.engine.begin() as conn:
        conn.execute(orgs.update().values(stripe_customer_id="cus_new"))
    assert engine.app.state.services.stripe_credits.send_due() == 1
    assert fake.support.balance_of("cus_new") == -900


def test_without_stripe_keys_credits_are_applied_by_the_simulated_provider(client, admin):
    client.put("/admin/orgs/org_s", headers=admin,
               json={"name": "S", "email": "s@x.example", "plan": "base_usage"})
    # Unlinked: it waits like any other, and says so.
    credit = grant(client, admin, "org_s", 100)
    assert credit["stripe_status"] == "pending"
