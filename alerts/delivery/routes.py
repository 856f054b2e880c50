"""Delivery tests over HTTP: POST /admin/test-email and /admin/test-slack (operator)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from alerts.api.contract import BODY_ERRORS
from alerts.api.deps import Caller, DeliveryChecks
from alerts.delivery.schemas import (
    EmailTestFailure,
    EmailTestResult,
    SlackTestFailure,
    SlackTestResult,
    TestEmailIn,
    TestSlackIn,
)
from billing_core.http import ErrorBody, error_responses

router = APIRouter(tags=["support"])


def _failed(model: type[EmailTestFailure] | type[SlackTestFailure], channel: str
            ) -> dict[int | str, dict[str, object]]:
    return {502: {"model": model, "description": f"The {channel} attempt failed; the body says "
                                                 "how, and whether a retry could help"}}


@router.post("/admin/test-email", response_model=EmailTestResult,
             responses={**BODY_ERRORS, **error_responses(503),
                        **_failed(EmailTestFailure, "SMTP")})
def test_email(checks: DeliveryChecks, caller: Caller, body: TestEmailIn | None = None
               ) -> EmailTestResult | JSONResponse:
    """Send a test email now (to ONCALL_EMAIL unless `to` is given) and say how it went."""
    answer = checks.test_email(body or TestEmailIn(), by=caller)
    if isinstance(answer, EmailTestFailure):
        return JSONResponse(status_code=502, content=answer.model_dump(mode="json"))
    return answer


@router.post("/admin/test-slack", response_model=SlackTestResult,
             responses={**BODY_ERRORS, **error_responses(503),
                        404: {"model": ErrorBody, "description": "No Slack receiver of the "
                                                                 "routes file has that name"},
                        409: {"model": ErrorBody, "description": "No Slack receiver is "
                                                                 "configured: Slack is off"},
                        **_failed(SlackTestFailure, "Slack")})
def test_slack(checks: DeliveryChecks, caller: Caller, body: TestSlackIn | None = None
               ) -> SlackTestResult | JSONResponse:
    """Post a test message to a Slack receiver (the first configured one by default)."""
    answer = checks.test_slack(body or TestSlackIn(), by=caller)
    if isinstance(answer, SlackTestFailure):
        return JSONResponse(status_code=502, content=answer.model_dump(mode="json"))
    return answer
