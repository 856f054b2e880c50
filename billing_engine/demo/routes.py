"""The demo's scripted incident over HTTP (admin): see it, start one now. Outside the demo
(no fault switch installed) both answer 404."""

from __future__ import annotations

from fastapi import APIRouter, Request

from billing_core.errors import NotFound
from billing_core.http import error_responses
from billing_engine.api.deps import ADMIN_ANSWERS
from billing_engine.audit.keys import STATE_ACTOR
from billing_engine.demo.fault import DemoFault, FaultWindow
from billing_engine.demo.schemas import DemoFaultIn, DemoFaultOut, FaultWindowOut

router = APIRouter(tags=["demo"], responses=ADMIN_ANSWERS)


def _fault(request: Request) -> DemoFault:
    fault = getattr(request.app.state, "demo_fault", None)
    if not isinstance(fault, DemoFault):
        raise NotFound("demo", "the engine is not running the demo (python -m billing_engine "
                               "demo, or make run)")
    return fault


def _window(window: FaultWindow | None) -> FaultWindowOut | None:
    if window is None:
        return None
    return FaultWindowOut(starts=window.starts, ends=window.ends, why=window.why)


def _state(fault: DemoFault) -> DemoFaultOut:
    return DemoFaultOut(active=_window(fault.current()),
                        next_scheduled=_window(fault.next_window()))


@router.get("/admin/demo/fault", response_model=DemoFaultOut,
            responses=error_responses(404, 503))
def demo_fault(request: Request) -> DemoFaultOut:
    """The demo's scripted incident: in force now, and the next scheduled one."""
    return _state(_fault(request))


@router.post("/admin/demo/fault", response_model=DemoFaultOut,
             responses=error_responses(404, 422, 503))
def start_demo_fault(request: Request, body: DemoFaultIn | None = None) -> DemoFaultOut:
    """Start the demo's error burst and latency spike now, for `minutes` (default 5)."""
    fault = _fault(request)
    by = str(getattr(request.state, STATE_ACTOR, None) or "admin")
    fault.trigger(minutes=(body or DemoFaultIn()).minutes, by=by)
    return _state(fault)
