"""Every field the engine reads from Stripe, and every parameter it sends on the payment
fetches, checked against stripe-python's own types for the pinned API version.

stripe-python 16 is generated from Stripe's OpenAPI spec for 2026-10-28.endive (pyproject bounds
the library to it). Its resource classes annotate each field; a path our parser reads that the
classes do not have is a field Stripe does not send at this version, which is how the engine once
read `invoice.charge` for months after 2025-03-31.basil removed it. Only the annotation each step
needs is evaluated, so the test does not depend on every forward reference resolving.
"""

from __future__ import annotations

import sys
import typing
from typing import Any

import pytest
import stripe
from stripe._list_object import ListObject
from stripe._stripe_object import StripeObject, UntypedStripeObject
from stripe.params import InvoicePaymentListParams

from billing_engine.demo.stripe_events import Customer, DemoStripe
from billing_engine.stripe.client import API_VERSION, invoice_payment_list_params
from billing_engine.stripe.webhooks.fields import (
    READ_PATHS,
    STRIPE_CLASSES,
    StripeFields,
    UndeclaredField,
)
from tests.support import stripe_events

# Lists the parser reads as objects of another kind: (kind, path) -> the items' kind.
ITEM_KINDS = {("subscription", "items.data"): "subscription_item"}


class _Names(dict[str, Any]):
    """Names a stripe annotation refers to: the class's nested classes, then the package."""

    def __missing__(self, name: str) -> Any:
        try:
            return getattr(stripe, name)
        except AttributeError:
            raise KeyError(name) from None


def _class(dotted: str) -> type:
    found: Any = stripe
    for part in dotted.split("."):
        found = getattr(found, part)
    return typing.cast(type, found)


def _annotation(cls: type, name: str) -> Any:
    """The evaluated annotation of field `name` on a stripe class, or KeyError."""
    for klass in cls.__mro__:
        raw = klass.__dict__.get("__annotations__", {}).get(name)
        if raw is None:
            continue
        names = _Names(vars(klass))
        module = vars(sys.modules[klass.__module__])
        return eval(raw, module, names) if isinstance(raw, str) else raw  # noqa: S307
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def _resolve(hint: Any, owner: type) -> Any:
    if isinstance(hint, typing.ForwardRef):
        names = _Names(vars(owner))
        return eval(hint.__forward_arg__, vars(sys.modules[owner.__module__]), names)  # noqa: S307
    if isinstance(hint, str):
        return _resolve(typing.ForwardRef(hint), owner)
    return hint


def _objects(hint: Any, owner: type) -> list[Any]:
    """The object types a field may hold: Optional, Union[str, X] (an expandable id), resolved."""
    hint = _resolve(hint, owner)
    if typing.get_origin(hint) is typing.Union:
        found: list[Any] = []
        for arg in typing.get_args(hint):
            found += _objects(arg, owner)
        return found
    return [hint]


def walk(cls: type, path: str) -> Any:
    """The type at the end of `path` from `cls`; AssertionError naming the step that fails."""
    current: list[Any] = [cls]
    owner = cls
    for step in path.split("."):
        following: list[Any] = []
        for candidate in current:
            origin = typing.get_origin(candidate) or candidate
            if origin is UntypedStripeObject:
                following.append(Any)  # free-form (metadata, event data): any key
            elif origin is ListObject and step == "data":
                (item,) = typing.get_args(candidate)
                following += _objects(item, owner)
            elif origin is ListObject and (step == "object" or step in ListObject.__annotations__):
                following.append(Any)  # the list's own fields: has_more, url
            elif isinstance(origin, type) and issubclass(origin, StripeObject):
                try:
                    following += _objects(_annotation(origin, step), origin)
                except KeyError:
                    continue
                owner = origin
        objects = [f for f in following if f is not type(None) and f is not str]
        assert following, f"{cls.__name__}.{path}: no field {step!r} at this API version"
        current = objects or following
    return current


CASES = [(kind, path) for kind, paths in sorted(READ_PATHS.items()) for path in sorted(paths)]


def test_the_library_is_the_one_generated_for_the_pinned_version():
    assert stripe.api_version == API_VERSION == "2026-10-28.endive"


@pytest.mark.parametrize(("kind", "path"), CASES, ids=[f"{k}.{p}" for k, p in CASES])
def test_every_field_the_parser_reads_exists_at_the_pinned_version(kind, path):
    found = walk(_class(STRIPE_CLASSES[kind]), path)
    items_kind = ITEM_KINDS.get((kind, path))
    if items_kind is not None:
        assert _class(STRIPE_CLASSES[items_kind]) in found, (kind, path, found)


@pytest.mark.parametrize(("cls", "path"), [
    ("Invoice", "charge"),  # removed in 2025-03-31.basil
    ("Invoice", "payment_intent"),  # removed in 2025-03-31.basil
    ("Invoice", "subscription_details.metadata"),  # moved under parent in basil
    ("Subscription", "current_period_start"),  # moved to the items in basil
    ("Charge", "invoice"),  # removed in basil
    ("Charge", "outcome.decline_code"),  # never existed
])
def test_the_walk_refuses_fields_stripe_removed_so_a_drift_fails(cls, path):
    with pytest.raises(AssertionError, match="no field"):
        walk(_class(cls), path)


def test_a_read_of_an_undeclared_path_is_refused_at_run_time():
    invoice = StripeFields("invoice", {"charge": "ch_1"})
    with pytest.raises(UndeclaredField):
        invoice.get("charge")


def _param_fits(hint: Any, value: Any) -> bool:
    hint = _resolve(hint, InvoicePaymentListParams)
    origin = typing.get_origin(hint)
    if origin in (typing.NotRequired, typing.Required):
        return _param_fits(typing.get_args(hint)[0], value)
    if origin is typing.Union:
        return any(_param_fits(arg, value) for arg in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    return isinstance(hint, type) and isinstance(value, hint) and not isinstance(value, bool)


@pytest.mark.parametrize("paid", [True, False])
def test_every_parameter_of_the_invoice_payment_lookup_is_a_typed_parameter(paid):
    params = invoice_payment_list_params("in_1", paid=paid)
    for name, value in params.items():
        hint = _annotation(InvoicePaymentListParams, name)
        assert _param_fits(hint, value), (name, value, hint)
    assert params["invoice"] == "in_1" and 1 <= params["limit"] <= 100


_DEMO = DemoStripe(client=None, secret="whsec_demo")  # type: ignore[arg-type]
_DEMO_CUSTOMER = Customer("org_1", "cus_1", "price_1", 2000, "sub_1")
BUILT = {
    "invoice": stripe_events.invoice("cus_1", 100, paid=True),
    "invoice (demo)": _DEMO._invoice(_DEMO_CUSTOMER, 100, paid=False),
    "charge (demo)": _DEMO._charge(_DEMO_CUSTOMER, 100, "sepa_debit",
                                   decline=("card_declined", "generic_decline", "Declined.")),
    "charge": stripe_events.charge("cus_1", 100, decline="insufficient_funds"),
    "payment_intent": stripe_events.payment_intent("cus_1", 100, latest_charge="ch_1",
                                                   decline="generic_decline"),
    "invoice_payment": stripe_events.invoice_payment("in_1", 100, intent_id="pi_1", paid=True),
    "subscription": stripe_events.subscription("sub_1", "cus_1"),
    "checkout.session": stripe_events.checkout_completed("org_1", "cus_1"),
}
# Includable fields: on the object only when a request asks, which a webhook never does.
NEVER_IN_EVENTS = {"invoice": {"payments"}, "charge": {"refunds"}}


@pytest.mark.parametrize("kind", sorted(BUILT))
def test_the_test_events_carry_only_fields_the_pinned_version_has(kind):
    built = BUILT[kind]
    kind = kind.removesuffix(" (demo)")
    cls = _class(STRIPE_CLASSES[kind])
    for name, value in built.items():
        walk(cls, name)
        if isinstance(value, dict) and name not in ("metadata", "payment_method_details"):
            for inner in value:
                walk(cls, f"{name}.{inner}")
    assert not NEVER_IN_EVENTS.get(kind, set()) & set(built)


def test_the_events_docs_stripe_md_says_to_enable_are_the_ones_the_engine_handles():
    import re
    from pathlib import Path

    from billing_engine.stripe.webhooks.service import HANDLED_TYPES

    guide = (Path(__file__).resolve().parents[2] / "docs" / "stripe.md").read_text()
    section = guide.split("## API version and webhook endpoint")[1].split("\n## ")[0]
    table = set(re.findall(r"^\| `([a-z_.]+)` \|", section, flags=re.M))
    enabled = set(re.findall(r"enabled_events\[\]=([a-z_.]+)", section))
    assert table == enabled == set(HANDLED_TYPES)
    assert "`2026-10-28.endive`" in section and API_VERSION == "2026-10-28.endive"
