"""Schemathesis over an app's own OpenAPI document, in process: every operation is sent input
generated from its declared parameters and body, valid and invalid, with a credential that
gets it past the access check, and every answer is checked against what the document declares.

    schema = openapi_schema(app, token=staff_token, likely={"org_id": ["org_fuzz"]})
    report = fuzz(schema, FuzzSettings.from_env())
    report.assert_clean()

`make test` runs it small and derandomized (the same requests on every run); `make fuzz` runs the
same tests with many more examples and a random seed. The environment says how much:

    FUZZ_EXAMPLES  examples per operation in each generation mode (default 15)
    FUZZ_SEED      unset: derandomized; an integer: that seed; `random`: a new one per test,
                   printed with the test's outcome so the run can be replayed
    FUZZ_SECONDS   a time budget per test (default 120). Once spent, no new operation is
                   started, and the test is skipped naming the operations it did not reach.
                   A slow machine fuzzes less; it does not fail for being slow.

What counts as a failure, per answer (schemathesis' checks of the same names): a 5xx; a status
the operation does not declare; a content type or a body that does not match the declared one.
Schemathesis' stricter checks (schema-valid input must get a 2xx, schema-invalid input a 4xx)
are left out: the apps check more than their schemas say (a period's month, a plan's name) and
pydantic coerces some values the schema types more narrowly (an integer for a date-time).

Why not `schemathesis.pytest.from_fixture`: its per-operation subtests rename the pytest item
through `Node._nodeid`, which pytest 9.2 no longer has. The operations' own Hypothesis
strategies (`APIOperation.as_strategy`) are public API and need no pytest integration.
"""

from __future__ import annotations

import os
import random
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, Config, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi

DEFAULT_EXAMPLES = 15
DEFAULT_SECONDS = 120.0
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


@dataclass(frozen=True)
class FuzzSettings:
    examples: int = DEFAULT_EXAMPLES
    seed: int | None = None  # None: derandomized
    seconds: float = DEFAULT_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FuzzSettings:
        env = os.environ if env is None else env
        raw_seed = env.get("FUZZ_SEED", "").strip()
        seed = (random.SystemRandom().randrange(2**32) if raw_seed == "random"
                else int(raw_seed) if raw_seed else None)
        return cls(examples=int(env.get("FUZZ_EXAMPLES") or DEFAULT_EXAMPLES), seed=seed,
                   seconds=float(env.get("FUZZ_SECONDS") or DEFAULT_SECONDS))


def openapi_schema(app: Any, *, token: str,
                   likely: Mapping[str, Sequence[str | int]] | None = None,
                   fixed: Mapping[str, str] | None = None) -> Any:
    """The app's /openapi.json as a schemathesis schema whose requests carry `token` as
    `Authorization: Bearer`. Parameters named in `likely` (`org_id`, `incident_id`) take one of
    the given values in about half the requests, so that part of them name things that exist
    and go past the 404; those in `fixed` (a body path such as `body.heartbeats[*].org_id`)
    always take theirs."""
    likely = likely or {}
    config = Config.from_dict({
        "headers": {"Authorization": f"Bearer {token}"},
        "dictionaries": {f"likely{i}": {"values": list(values)}
                         for i, values in enumerate(likely.values())},
        "parameters": {
            **{name: {"dictionary": f"likely{i}", "probability": 0.5}
               for i, name in enumerate(likely)},
            **(fixed or {}),
        },
    })
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


@dataclass
class FuzzReport:
    settings: FuzzSettings
    operations: int = 0
    requests: int = 0
    elapsed: float = 0.0
    problems: list[str] = field(default_factory=list)
    not_reached: list[str] = field(default_factory=list)

    @property
    def selected(self) -> int:
        """Operations the run was to fuzz, reached before the time budget ran out or not."""
        return self.operations + len(self.not_reached)

    def assert_clean(self) -> None:
        seed = "derandomized" if self.settings.seed is None else f"FUZZ_SEED={self.settings.seed}"
        summary = (f"{self.requests} requests to {self.operations} operations in "
                   f"{self.elapsed:.1f} s ({self.settings.examples} examples per operation and "
                   f"mode, {seed})")
        print(summary)  # shown for passing tests too by `pytest -rP` (make fuzz)
        assert self.problems == [], summary + "\n\n" + "\n\n".join(self.problems)
        if self.not_reached:
            pytest.skip(f"fuzz time budget of {self.settings.seconds:.0f} s spent after "
                        f"{summary}; not reached: {', '.join(self.not_reached)}")


Select = Callable[[str, str], bool]


def fuzz(schema: Any, settings: FuzzSettings, *, select: Select | None = None) -> FuzzReport:
    """Every operation `select(method, path)` keeps (all by default), first with valid and then
    with invalid input; each operation's failures are collected, not the first one alone.
    The app's lifespan, started by the first request, is ended before returning."""
    report = FuzzReport(settings=settings)
    started = time.monotonic()
    try:
        for result in schema.get_all_operations():
            if not hasattr(result, "ok"):  # an Err: schemathesis cannot read this operation
                report.problems.append(f"an operation schemathesis cannot read: {result.err()}")
                continue
            operation = result.ok()
            if select is not None and not select(operation.method.upper(), operation.path):
                continue
            if time.monotonic() - started > settings.seconds:
                report.not_reached.append(operation.label)
                continue
            report.operations += 1
            for mode in _modes(operation):
                report.requests += _fuzz_operation(operation, mode, settings, report.problems)
    finally:
        asgi.shutdown_lifespans()
        report.elapsed = time.monotonic() - started
    return report


def _modes(operation: Any) -> list[GenerationMode]:
    takes_input = any(True for _ in operation.iter_parameters()) or bool(operation.body)
    # Nothing to make invalid in a route without parameters or body.
    return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if takes_input else [
        GenerationMode.POSITIVE]


def _fuzz_operation(operation: Any, mode: GenerationMode, settings: FuzzSettings,
                    problems: list[str]) -> int:
    sent = 0

    @hypothesis.settings(
        max_examples=settings.examples,
        derandomize=settings.seed is None,
        database=None,  # no replay of earlier runs: the same inputs for the same settings
        deadline=None,  # no per-request time limit a busy machine could reach
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow],
        print_blob=False,
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        nonlocal sent
        sent += 1
        case.call_and_validate(checks=CHECKS)

    if settings.seed is not None:
        run = hypothesis.seed(settings.seed)(run)
    try:
        run()
    except Unsatisfiable as unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            problems.append(f"{operation.label}: no valid input can be made: {unsatisfiable}")
        # else: schemathesis found no way to make this operation's input invalid
    except (Exception, BaseExceptionGroup) as failure:  # schemathesis' FailureGroup
        # With its notes: Hypothesis' falsifying example, schemathesis' curl command.
        text = "".join(traceback.format_exception_only(failure)).strip()
        problems.append(f"{operation.label} ({mode.value} input):\n{text}")
    return sent
