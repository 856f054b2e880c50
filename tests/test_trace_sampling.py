"""Sampling: 1 % of traces by default, decided by trace id, and every trace holding an error
kept whatever the ratio (billing_core/tracing.py). An SDK provider of the test's own, so the
process-wide one stays unset."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode

from billing_core.tracing import (
    KeepErrorsProcessor,
    KeepErrorsSampler,
    sampler_from_env,
    tracing_enabled,
)


def provider(ratio: float) -> tuple[trace.Tracer, InMemorySpanExporter]:
    exported = InMemorySpanExporter()
    tracer_provider = TracerProvider(
        sampler=KeepErrorsSampler(ParentBased(TraceIdRatioBased(ratio))))
    tracer_provider.add_span_processor(KeepErrorsProcessor(SimpleSpanProcessor(exported)))
    return tracer_provider.get_tracer("test"), exported


def test_a_failing_request_is_exported_whole_even_when_its_trace_was_not_sampled() -> None:
    tracer, exported = provider(0.0)
    with tracer.start_as_current_span("GET /v1/billing", kind=SpanKind.SERVER) as server:
        with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT):
            pass
        server.set_status(Status(StatusCode.ERROR))
        # Undecided: recorded, and the traceparent it sends says not sampled.
        assert server.is_recording() and not server.get_span_context().trace_flags.sampled
    names = sorted(span.name for span in exported.get_finished_spans())
    assert names == ["GET /v1/billing", "SELECT"]
    assert all(span.context.trace_flags.sampled for span in exported.get_finished_spans())


def test_a_successful_unsampled_request_is_not_exported() -> None:
    tracer, exported = provider(0.0)
    with tracer.start_as_current_span("GET /v1/plans", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT):
            pass
    assert exported.get_finished_spans() == ()


def test_a_404_the_caller_expected_is_not_an_error_but_a_5xx_answer_is() -> None:
    tracer, exported = provider(0.0)
    for status in (404, 503):
        with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT) as client:
            client.set_attribute("http.response.status_code", status)
            client.set_status(Status(StatusCode.ERROR))
    kept = [span.attributes["http.response.status_code"]
            for span in exported.get_finished_spans()]
    assert kept == [503]


def test_a_trace_sampled_upstream_is_exported_here_too() -> None:
    tracer, exported = provider(0.0)
    parent = trace.set_span_in_context(trace.NonRecordingSpan(trace.SpanContext(
        trace_id=0x1234, span_id=0x99, is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))))
    token = otel_context.attach(parent)
    try:
        with tracer.start_as_current_span("PUT /admin/orgs/{org_id}", kind=SpanKind.SERVER):
            pass
    finally:
        otel_context.detach(token)
    [span] = exported.get_finished_spans()
    assert span.context.trace_id == 0x1234


def test_about_one_percent_of_traces_are_sampled_by_default() -> None:
    tracer, exported = provider(0.01)
    for _ in range(5000):
        with tracer.start_as_current_span("GET", kind=SpanKind.SERVER):
            pass
    assert 20 <= len(exported.get_finished_spans()) <= 90  # 50 expected


def test_the_standard_variables_choose_the_sampler() -> None:
    assert "0.01" in sampler_from_env({}).get_description()
    assert "0.25" in sampler_from_env({"OTEL_TRACES_SAMPLER": "traceidratio",
                                       "OTEL_TRACES_SAMPLER_ARG": "0.25"}).get_description()
    assert sampler_from_env({"OTEL_TRACES_SAMPLER": "always_off"}).get_description() == (
        "AlwaysOffSampler")  # off means off, errors included


def test_tracing_is_off_without_an_endpoint() -> None:
    assert not tracing_enabled({})
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert not tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                                "OTEL_SDK_DISABLED": "true"})
    assert not tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                                "OTEL_TRACES_EXPORTER": "none"})
