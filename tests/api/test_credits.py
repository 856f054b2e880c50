"""Credits: an admin grants one with a reason; the next invoices use it up, never below zero."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.builders import ADMIN_HEADERS, new_org

NOV_CLOSES = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
DEC_CLOSES = datetime(2027, 1, 1, 1, 0, tzinfo=UTC)


def grant(client, admin, org, cents, reason="goodwill", **headers):
    return client.post("/admin/credits", headers={**admin, **headers},
                       json={"org_id": org, "amount_cents": cents, "reason": reason})


def close(client, admin, period):
    response = client.post("/admin/invoices/close", params={"period": period}, headers=admin)
    assert response.status_code == 200, response.text
    return response.json()


def credits_of(client, org):
    response = client.get("/v1/credits", params={"org_id": org}, headers=ADMIN_HEADERS)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_granted_credit_is_listed_with_who_granted_it_and_its_balance(client, admin):
    org = new_org(client, admin)
    first = grant(client, admin, org, 750, "ticket 1234: overage billed twice in June")
    second = client.post(f"/admin/credits/{org}", headers=admin,
                         json={"amount_cents": 250, "reason": "  outage on the 3rd  "})
    assert (first.status_code, second.status_code) == (201, 201)
    body = first.json()
    assert (body["org_id"], body["amount_cents"], body["remaining_cents"]) == (org, 750, 750)
    assert body["granted_by"] == "admin" and body["applications"] == []
    listed = credits_of(client, org)
    assert listed["balance_cents"] == 1000 and listed["currency"] == "usd"
    assert [c["reason"] for c in listed["credits"]] == [
        "outage on the 3rd", "ticket 1234: overage billed twice in June"]  # newest first


@pytest.mark.parametrize(("body", "field"), [
    ({"amount_cents": 500, "reason": "x"}, "org_id"),
    ({"org_id": "bad id!", "amount_cents": 500, "reason": "x"}, "org_id"),
    ({"org_id": "ORG", "reason": "x"}, "amount_cents"),
    ({"org_id": "ORG", "amount_cents": 0, "reason": "x"}, "amount_cents"),
    ({"org_id": "ORG", "amount_cents": -5, "reason": "x"}, "amount_cents"),
    ({"org_id": "ORG", "amount_cents": 7.5, "reason": "x"}, "amount_cents"),
    ({"org_id": "ORG", "amount_cents": "750", "reason": "x"}, "amount_cents"),
    ({"org_id": "ORG", "amount_cents": 10_000_001, "reason": "x"}, "amount_cents"),
    ({"org_id": "ORG", "amount_cents": 500}, "reason"),
    ({"org_id": "ORG", "amount_cents": 500, "reason": "   "}, "reason"),
    ({"org_id": "ORG", "amount_cents": 500, "reason": "x", "note": "y"}, "note"),
])
def test_credit_validation_names_the_field_and_stores_nothing(client, admin, body, field):
    org = new_org(client, admin)
    body = {k: (org if v == "ORG" else v) for k, v in body.items()}
    response = client.post("/admin/credits", headers=admin, json=body)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert credits_of(client, org)["credits"] == []


def test_a_credit_for_an_unknown_org_is_a_404_naming_it(client, admin):
    response = grant(client, admin, "org_nobody", 100)
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "org_id"
    assert client.get("/v1/credits", params={"org_id": "org_nobody"},
                      headers=admin).status_code == 404


def test_granting_needs_the_admin_key(client, admin):
    org = new_org(client, admin)
    refused = grant(client, {"X-Admin-Key": "not-it"}, org, 100)
    assert refused.status_code == 401
    assert credits_of(client, org)["credits"] == []


def test_a_retried_grant_with_the_same_idempotency_key_is_stored_once(client, admin):
    org = new_org(client, admin)
    first = grant(client, admin, org, 500, **{"Idempotency-Key": "ticket-77"})
    retry = grant(client, admin, org, 500, **{"Idempotency-Key": "ticket-77"})
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json()["id"] == first.json()["id"]
    assert credits_of(client, org)["balance_cents"] == 500
    other = grant(client, admin, org, 900, **{"Idempotency-Key": "ticket-77"})
    assert other.status_code == 409
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert credits_of(client, org)["balance_cents"] == 500


def test_unused_credit_carries_to_the_next_invoice(client, admin, clock):
    org = new_org(client, admin, plan="base_usage")  # 2,000 cents a month, no usage
    grant(client, admin, org, 5000, "migration goodwill")
    clock.now = NOV_CLOSES
    close(client, admin, "2026-11")
    assert credits_of(client, org)["balance_cents"] == 3000
    clock.now = DEC_CLOSES
    close(client, admin, "2026-12")
    invoices = client.get("/v1/invoices", params={"org_id": org}, headers=admin).json()["invoices"]
    assert [(i["period"]["key"], i["credits_applied_cents"], i["total_cents"])
            for i in invoices] == [("2026-12", 2000, 0), ("2026-11", 2000, 0)]
    [credit] = credits_of(client, org)["credits"]
    assert (credit["remaining_cents"], credit["applied_cents"]) == (1000, 4000)
    assert [(a["period"], a["amount_cents"]) for a in credit["applications"]] == [
        ("2026-11", 2000), ("2026-12", 2000)]
    preview = client.get("/v1/billing", params={"org_id": org},
                         headers=admin).json()["invoice_preview"]
    assert preview["period"]["key"] == "2027-01" and preview["credits_applied_cents"] == 1000


def test_a_credit_granted_after_the_period_closed_waits_for_the_next_invoice(client, admin, clock):
    org = new_org(client, admin, plan="base_usage")
    clock.now = NOV_CLOSES + timedelta(hours=2)  # the close job has not run yet
    grant(client, admin, org, 400)
    close(client, admin, "2026-11")
    [november] = client.get("/v1/invoices", params={"org_id": org},
                            headers=admin).json()["invoices"]
    assert november["total_cents"] == 2000 and november["credits_applied_cents"] == 0
    assert credits_of(client, org)["balance_cents"] == 400


def test_a_free_org_keeps_its_credit_because_it_owes_nothing(client, admin, clock):
    org = new_org(client, admin, plan="free")
    grant(client, admin, org, 300)
    clock.now = NOV_CLOSES
    close(client, admin, "2026-11")
    [invoice] = client.get("/v1/invoices", params={"org_id": org}, headers=admin).json()["invoices"]
    assert invoice["lines"] == [invoice["lines"][0]] and invoice["total_cents"] == 0
    assert credits_of(client, org)["balance_cents"] == 300
