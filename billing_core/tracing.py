"""OpenTelemetry traces for our processes: off unless an OTLP endpoint is set.

`configure_tracing(service)` is called once at each process's start (the engine's app factory,
`python -m alerts serve`, the console's `dashboard/server.py`). Without
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`), or with `OTEL_SDK_DISABLED=true` or
`OTEL_TRACES_EXPORTER=none`, it returns None having loaded neither the SDK, the exporter nor any
instrumentation (FastAPI itself imports the OpenTelemetry API, which does nothing without a
provider): no span is made, the log formatter's trace hook stays None. That is the whole of
"zero overhead when off" (docs/observability.md has the bench figures).

When on, the standard variables are honoured by the SDK itself: `OTEL_SERVICE_NAME` and
`OTEL_RESOURCE_ATTRIBUTES` (the resource), `OTEL_EXPORTER_OTLP_*` (endpoint, headers, timeout,
compression, certificate: OTLP over HTTP with protobuf), `OTEL_BSP_*` (the batch processor),
`OTEL_PROPAGATORS` (W3C `traceparent` and baggage by default).

Sampling: `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, with our default
`parentbased_traceidratio` at `0.01` (1 % of traces, decided by trace id, so every process
keeps the same 1 %). Errors are always kept: a sampler cannot know at a request's start whether
it will fail, and a true tail decision needs a collector that sees whole traces. So in-process:
a trace the sampler drops is still recorded (not exported, `traceparent` says not sampled), its
spans wait in memory until the process's local root span ends, and then they are exported if any
of them is an error (a server span with a 5xx, a client span with a 5xx or no answer, a span
that recorded an exception as error), else dropped. Our client spans see a callee's 5xx, so
both sides of a failed call between our processes are kept. `always_off` keeps nothing, errors
included.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from billing_core import logs

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler

log = logging.getLogger("billing_core.tracing")
DEFAULT_SAMPLER = "parentbased_traceidratio"
DEFAULT_RATIO = 0.01
# Spans of undecided traces held at most: a burst never grows memory without bound.
MAX_PENDING_TRACES = 2048
MAX_SPANS_PER_TRACE = 512

_provider: TracerProvider | None = None
_lock = threading.Lock()


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if (env.get("OTEL_SDK_DISABLED") or "").strip().lower() == "true":
        return False
    if (env.get("OTEL_TRACES_EXPORTER") or "otlp").strip().lower() == "none":
        return False
    return bool((env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                 or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "").strip())


def sampler_from_env(environ: Mapping[str, str]) -> Sampler:
    """The standard samplers by their standard names; an unknown name falls back to ours."""
    from opentelemetry.sdk.trace import sampling

    name = (environ.get("OTEL_TRACES_SAMPLER") or DEFAULT_SAMPLER).strip().lower()
    raw = (environ.get("OTEL_TRACES_SAMPLER_ARG") or "").strip()
    try:
        ratio = float(raw) if raw else DEFAULT_RATIO
    except ValueError:
        ratio = DEFAULT_RATIO
    ratio = min(max(ratio, 0.0), 1.0)
    samplers: dict[str, Sampler] = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(ratio),
        "parentbased_always_on": sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": sampling.ParentBased(sampling.TraceIdRatioBased(ratio)),
    }
    if name not in samplers:
        log.warning("unknown OTEL_TRACES_SAMPLER; using the default",
                    extra={"sampler": name, "default": DEFAULT_SAMPLER})
        name = DEFAULT_SAMPLER
    inner = samplers[name]
    return inner if name == "always_off" else KeepErrorsSampler(inner)


def _keep_errors_classes() -> tuple[type, type]:
    """The sampler and processor, built on first use so nothing is imported while off."""
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
    from opentelemetry.trace import SpanContext as Context
    from opentelemetry.trace import SpanKind, StatusCode, TraceFlags

    class _KeepErrorsSampler(Sampler):
        """The configured sampler; what it drops is recorded anyway, undecided."""

        def __init__(self, inner: Sampler) -> None:
            self.inner = inner

        def should_sample(self, parent_context: Any, trace_id: int, name: str,
                          kind: Any = None, attributes: Any = None, links: Any = None,
                          trace_state: Any = None) -> SamplingResult:
            result = self.inner.should_sample(parent_context, trace_id, name, kind,
                                              attributes, links, trace_state)
            if result.decision == Decision.DROP:
                return SamplingResult(Decision.RECORD_ONLY, result.attributes,
                                      result.trace_state)
            return result

        def get_description(self) -> str:
            return f"KeepErrors{{{self.inner.get_description()}}}"

    def is_error(span: ReadableSpan) -> bool:
        if span.status.status_code != StatusCode.ERROR:
            return False
        if span.kind != SpanKind.CLIENT:
            return True
        status = (span.attributes or {}).get("http.response.status_code",
                                             (span.attributes or {}).get("http.status_code"))
        # A 404 a client expected is no error of ours; a 5xx or no answer at all is.
        return not isinstance(status, int) or status >= 500

    def sampled_copy(span: ReadableSpan) -> ReadableSpan:
        context = span.context
        flagged = Context(context.trace_id, context.span_id, context.is_remote,
                          TraceFlags(TraceFlags.SAMPLED), context.trace_state)
        return ReadableSpan(
            name=span.name, context=flagged, parent=span.parent, resource=span.resource,
            attributes=span.attributes, events=span.events, links=span.links, kind=span.kind,
            status=span.status, start_time=span.start_time, end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope)

    class _KeepErrorsProcessor(SpanProcessor):
        """Sampled spans go straight to the exporting processor; spans of undecided traces wait
        for their local root to end, and go too if the trace holds an error."""

        def __init__(self, exporting: SpanProcessor) -> None:
            self.exporting = exporting
            self._pending: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
            self._lock = threading.Lock()

        def on_start(self, span: Span, parent_context: Any = None) -> None:
            self.exporting.on_start(span, parent_context=parent_context)

        def on_end(self, span: ReadableSpan) -> None:
            if span.context.trace_flags.sampled:
                self.exporting.on_end(span)
                return
            local_root = span.parent is None or span.parent.is_remote
            trace_id = span.context.trace_id
            with self._lock:
                held = self._pending.pop(trace_id, []) if local_root else None
                if not local_root:
                    spans = self._pending.setdefault(trace_id, [])
                    if len(spans) < MAX_SPANS_PER_TRACE:
                        spans.append(span)
                    while len(self._pending) > MAX_PENDING_TRACES:
                        self._pending.popitem(last=False)
            if held is None:
                return
            trace = [*held, span]
            if any(is_error(item) for item in trace):
                for item in trace:
                    self.exporting.on_end(sampled_copy(item))

        def shutdown(self) -> None:
            self.exporting.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return bool(self.exporting.force_flush(timeout_millis))

    return _KeepErrorsSampler, _KeepErrorsProcessor


def KeepErrorsSampler(inner: Sampler) -> Sampler:  # noqa: N802 (a class, built lazily)
    sampler_class, _ = _keep_errors_classes()
    sampler: Sampler = sampler_class(inner)
    return sampler


def KeepErrorsProcessor(exporting: SpanProcessor) -> SpanProcessor:  # noqa: N802
    _, processor_class = _keep_errors_classes()
    processor: SpanProcessor = processor_class(exporting)
    return processor


def configure_tracing(service_name: str, *, version: str = "",
                      environ: Mapping[str, str] | None = None,
                      instrument: Sequence[str] = ()) -> TracerProvider | None:
    """Set up tracing for this process, or do nothing at all when it is off. `instrument`
    names the libraries to instrument globally: "httpx", "requests", "redis"."""
    global _provider
    env = os.environ if environ is None else environ
    if not tracing_enabled(env):
        return None
    with _lock:
        if _provider is not None:
            return _provider
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        defaults: dict[str, str] = {SERVICE_NAME: service_name}
        if version:
            defaults[SERVICE_VERSION] = version
        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override these (Resource.create).
        resource = Resource.create(
            {k: v for k, v in defaults.items()
             if not (k == SERVICE_NAME and env.get("OTEL_SERVICE_NAME"))})
        provider = TracerProvider(resource=resource, sampler=sampler_from_env(env))
        provider.add_span_processor(KeepErrorsProcessor(BatchSpanProcessor(OTLPSpanExporter())))
        trace.set_tracer_provider(provider)
        _provider = provider
        logs.trace_ids = current_trace_ids
        for library in instrument:
            _instrument_library(library)
        log.info("tracing on", extra={"service": service_name,
                                      "sampler": provider.sampler.get_description()})
        return provider


def _instrument_library(library: str) -> None:
    if library == "httpx":
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor().instrument()
    elif library == "requests":
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        RequestsInstrumentor().instrument()
    elif library == "redis":
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        RedisInstrumentor().instrument()
    else:
        raise ValueError(f"no instrumentation for {library!r}")


def current_trace_ids() -> tuple[str, str, bool] | None:
    """(trace id, span id, sampled) of the span in progress, as hex; None outside any."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return (format(context.trace_id, "032x"), format(context.span_id, "016x"),
            context.trace_flags.sampled)


def instrument_fastapi(app: Any, *, excluded: Sequence[str]) -> None:
    """Server spans for an app, when tracing is on (probes and scrapes are left out)."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider,
                                       excluded_urls=",".join(excluded))


def instrument_sqlalchemy(engine: Any) -> None:
    """Spans for every statement on this engine, when tracing is on."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # The instrumentation declares SQLAlchemy < 2.1 and refuses 2.1 without this; its event
    # hooks are the same in 2.1 (tests/test_tracing.py sees the SQL spans).
    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=_provider,
                                        enable_commenter=False, skip_dep_check=True)


def exemplar(*, error: bool) -> dict[str, str] | None:
    """The trace id as an exemplar for a latency sample, when its trace will be exported:
    sampled, or an error (an undecided trace holding an error is kept at its root's end)."""
    if logs.trace_ids is None:
        return None
    ids = logs.trace_ids()
    if ids is None or not (ids[2] or error):
        return None
    return {"trace_id": ids[0]}
