"""The HTTP side of a flush: several requests to Stripe in flight, no database work.

Two ways out, chosen per claimed chunk by MeterReporting:

- the v2 meter event stream: the chunk cut into requests of up to 100 events, sent
  `concurrency` at a time. A request is taken or refused whole; a 429 holds back only that
  request's events.
- v1 meter events, one event per request: Stripe allows one call at a time per customer and
  meter (it answers 429 to a second), so each customer's events go one after another in one
  task, and customers run side by side. A 429 holds back only that customer's remaining events.

Workers return outcomes; the flush's own thread writes them to the outbox, so the database sees
one writer per flush whatever the concurrency.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from billing_engine.stripe.client import (
    ErrorKind,
    MeterEvent,
    MeterReporter,
    ProviderError,
)
from billing_engine.stripe.meters.rules import STREAM_MAX_EVENTS, batches, by_key
from billing_engine.stripe.meters.store import OutboxRecord

Item = tuple[OutboxRecord, MeterEvent]


@dataclass
class Outcome:
    """What became of some records: `error` None means Stripe took them."""

    items: Sequence[Item]
    error: ProviderError | None = None


@dataclass
class SendReport:
    done: list[Outcome] = field(default_factory=list)
    untried: list[Item] = field(default_factory=list)  # held back: a 429, a stop
    # Per held-back record id: why and until when it waits (a 429's Retry-After).
    held_back_by: dict[int, ProviderError] = field(default_factory=dict)
    stop: ProviderError | None = None  # circuit open or a refused key: the run ends


def stops_the_run(error: ProviderError) -> bool:
    """Every further request would fail the same way: the breaker is open, or the key is bad."""
    return error.kind is ErrorKind.CIRCUIT_OPEN or (
        error.kind is ErrorKind.CLIENT_ERROR and not error.record_is_at_fault
    )


class Sender:
    def __init__(self, provider: MeterReporter, *, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.provider = provider
        self.concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.concurrency, thread_name_prefix="meter-send"
                )
            return self._pool

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    # -- the stream -------------------------------------------------------------------------

    def stream(self, items: Sequence[Item]) -> SendReport:
        report = SendReport()
        stop = threading.Event()
        lock = threading.Lock()

        def send(batch: Sequence[Item]) -> None:
            if stop.is_set():
                with lock:
                    report.untried.extend(batch)
                return
            try:
                self.provider.report_meter_event_batch([event for _, event in batch])
            except ProviderError as exc:
                with lock:
                    if stops_the_run(exc):
                        stop.set()
                        report.stop = report.stop or exc
                        if exc.kind is ErrorKind.CIRCUIT_OPEN:
                            report.untried.extend(batch)
                            return
                    report.done.append(Outcome(batch, exc))
                return
            with lock:
                report.done.append(Outcome(batch))

        list(self._executor().map(send, batches(items, STREAM_MAX_EVENTS)))
        return report

    # -- v1, one event per request ----------------------------------------------------------

    def one_by_one(self, items: Sequence[Item]) -> SendReport:
        report = SendReport()
        stop = threading.Event()
        lock = threading.Lock()

        def send_customer(run: list[Item]) -> None:
            for index, (record, event) in enumerate(run):
                if stop.is_set():
                    with lock:
                        report.untried.extend(run[index:])
                    return
                try:
                    self.provider.report_meter_event(event)
                except ProviderError as exc:
                    with lock:
                        if stops_the_run(exc):
                            stop.set()
                            report.stop = report.stop or exc
                            if exc.kind is ErrorKind.CIRCUIT_OPEN:
                                report.untried.extend(run[index:])
                                return
                        report.done.append(Outcome([(record, event)], exc))
                        if exc.kind is ErrorKind.RATE_LIMITED:
                            # Only this customer waits; the others go on.
                            for later in run[index + 1 :]:
                                report.held_back_by[later[0].id] = exc
                            report.untried.extend(run[index + 1 :])
                            return
                        if stops_the_run(exc):
                            report.untried.extend(run[index + 1 :])
                            return
                    continue
                with lock:
                    report.done.append(Outcome([(record, event)]))

        runs = list(by_key(items, lambda item: item[1].stripe_customer_id).values())
        if len(runs) == 1:
            send_customer(runs[0])  # no thread hop for the common single-customer trickle
        else:
            list(self._executor().map(send_customer, runs))
        return report
