"""Every parameter usage reporting sends, and every field of Stripe's answers it reads, checked
against stripe-python's own typed params and objects for the pinned API version: a drift from
Stripe's schema (in our code or in the stand-in) fails here."""

from __future__ import annotations

import time
from typing import Any

from stripe.events._v1_billing_meter_error_report_triggered_event import (
    V1BillingMeterErrorReportTriggeredEvent as Report,
)
from stripe.params.billing._meter_event_adjustment_create_params import (
    MeterEventAdjustmentCreateParams,
    MeterEventAdjustmentCreateParamsCancel,
)
from stripe.params.billing._meter_event_create_params import MeterEventCreateParams
from stripe.params.v2.billing._meter_event_stream_create_params import (
    MeterEventStreamCreateParams,
    MeterEventStreamCreateParamsEvent,
)
from stripe.v2.billing._meter_event_session import MeterEventSession

from billing_engine.stripe.circuit_breaker import CircuitBreaker
from billing_engine.stripe.client import MeterEvent, StripeProvider
from tests.support.fake_stripe import ADJUSTMENTS, METER_EVENTS, FakeStripe
from tests.support.fake_stripe_v2 import SESSIONS, STREAM


def fields(typed: Any) -> set[str]:
    return set(typed.__annotations__)


def form_roots(form: dict[str, str]) -> set[str]:
    return {key.split("[", 1)[0] for key in form}


def test_what_usage_reporting_sends_is_what_stripe_python_types_allow():
    with FakeStripe() as fake:
        provider = StripeProvider(api_key=fake.api_key, api_base=fake.url,
                                  breaker=CircuitBreaker(clock=time.monotonic))
        event = MeterEvent(identifier="usage-org_1-2026111809-v1-0a1b2c3d",
                           event_name="instance_minutes", stripe_customer_id="cus_1", value=60,
                           timestamp=int(time.time()) - 3600)
        provider.report_meter_event(event)
        provider.report_meter_event_batch([
            MeterEvent(identifier=f"usage-org_1-2026111810-v1-{n:08x}",
                       event_name="instance_minutes", stripe_customer_id="cus_1", value=60,
                       timestamp=int(time.time()) - 3600) for n in range(3)])
        provider.cancel_meter_event(event_name="instance_minutes", identifier=event.identifier)
        [v1] = fake.requests_to(METER_EVENTS)
        [stream] = fake.requests_to(STREAM)
        [adjustment] = fake.requests_to(ADJUSTMENTS)
        [session] = fake.requests_to(SESSIONS)

    assert form_roots(v1.form) <= fields(MeterEventCreateParams)
    assert MeterEventCreateParams.__required_keys__ <= form_roots(v1.form)

    assert set(stream.json) <= fields(MeterEventStreamCreateParams)
    for sent in stream.json["events"]:
        assert set(sent) <= fields(MeterEventStreamCreateParamsEvent)
        assert MeterEventStreamCreateParamsEvent.__required_keys__ <= set(sent)
        assert all(isinstance(v, str) for v in sent["payload"].values())  # Dict[str, str]

    assert form_roots(adjustment.form) <= fields(MeterEventAdjustmentCreateParams)
    assert MeterEventAdjustmentCreateParams.__required_keys__ <= form_roots(adjustment.form)
    assert {k[len("cancel["):-1] for k in adjustment.form if k.startswith("cancel[")} <= fields(
        MeterEventAdjustmentCreateParamsCancel)
    assert adjustment.form["type"] == "cancel"
    assert session.form == {}  # the session takes no parameters


def test_the_stand_ins_answers_carry_only_fields_stripe_python_knows():
    with FakeStripe() as fake:
        session = fake.v2.create_session(time.time())
        report = fake.v2.error_report(
            [("meter_event_customer_not_found",
              {"error_message": "No customer.", "request": {"identifier": "usage-x-v1-00000000"}})],
            start=time.time() - 60, end=time.time())
    assert set(session) <= fields(MeterEventSession)
    assert set(report) - {"data", "related_object"} <= fields(Report) | {
        "context", "created", "id", "livemode", "object", "reason", "type"}
    data = report["data"]
    Data = Report.V1BillingMeterErrorReportTriggeredEventData  # noqa: N806
    assert set(data) == fields(Data)
    assert set(data["reason"]) == fields(Data.Reason)
    [error_type] = data["reason"]["error_types"]
    assert set(error_type) == fields(Data.Reason.ErrorType)
    [sample] = error_type["sample_errors"]
    assert set(sample) == fields(Data.Reason.ErrorType.SampleError)
    assert set(sample["request"]) == fields(Data.Reason.ErrorType.SampleError.Request)
    assert set(report["related_object"]) == fields(Report.RelatedObject)
