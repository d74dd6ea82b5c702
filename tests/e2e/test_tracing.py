"""One trace per causal chain: from the HTTP request, through the outbox and Kafka, into
every consumer and the events it appends (DESIGN: observability).

The services export their spans over OTLP/HTTP (configured by the standard ``OTEL_*``
variables, as a deployment would) to a receiver in this test process that keeps them in
memory. The variables are set when this module is imported, i.e. before the session's
system starts (the ``system`` fixture copies the environment when it starts it).
"""

from __future__ import annotations

import gzip
import os
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.conftest import eventually
from tests.registration_support import body

pytestmark = pytest.mark.kafka

SPANS: list[dict] = []  # every span the services exported, decoded
RAW: list[bytes] = []  # every export request as received (tests/e2e/test_leak_scan.py)


class _OtlpReceiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        RAW.append(raw)
        request = ExportTraceServiceRequest.FromString(raw)
        for rs in request.resource_spans:
            attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    SPANS.append({
                        "service": attrs.get("service.name"), "name": s.name, "kind": s.kind,
                        "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                        "parent": s.parent_span_id.hex(),
                        "links": [(lk.trace_id.hex(), lk.span_id.hex()) for lk in s.links],
                        "attributes": {a.key: a.value.string_value for a in s.attributes}})
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def _start_receiver() -> None:
    if "OTEL_EXPORTER_OTLP_ENDPOINT" in os.environ or "OTEL_TRACES_EXPORTER" in os.environ:
        return  # the caller exports elsewhere: the span assertions are skipped
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{server.server_port}"
    os.environ.setdefault("OTEL_BSP_SCHEDULE_DELAY", "200")
    os.environ["E2E_OTLP_RECEIVER"] = "1"


_start_receiver()


async def test_registration_to_activation_is_one_trace(system):
    trace_id = secrets.token_hex(16)
    header = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    async with system.client("registration", "platform") as http:
        r = await http.post("/v1/accounts", json=body(category="lifestyle"),
                            headers={"traceparent": header})
        assert r.status_code == 202, r.text
        account_id = r.json()["account_id"]
        seen: dict[str, dict] = {}

        async def activated() -> bool:
            h = await http.get(f"/v1/accounts/{account_id}/history")
            seen.update({e["type"]: e for e in h.json()["events"]} if h.status_code == 200
                        else {})
            return "registration.AccountActivated" in seen

        await eventually(activated, timeout=60, what="verification to activate the account")
    submitted = seen["registration.AccountRegistrationSubmitted"]
    activated_event = seen["registration.AccountActivated"]
    # The request's span continues the caller's trace; the activation was decided in
    # registration's consumer span, continuing verification's event, which continued ours.
    assert submitted["traceparent"].split("-")[1] == trace_id
    assert activated_event["traceparent"].split("-")[1] == trace_id
    assert activated_event["traceparent"] != submitted["traceparent"]
    assert activated_event["correlation_id"] == submitted["correlation_id"]

    if os.environ.get("E2E_OTLP_RECEIVER") != "1":
        pytest.skip("spans are exported elsewhere (OTEL_* set by the caller)")
    request_span = submitted["traceparent"].split("-")[2]
    activation_span = activated_event["traceparent"].split("-")[2]
    found: dict[str, dict] = {}

    async def exported() -> bool:
        ours = [s for s in SPANS if s["trace_id"] == trace_id]
        for s in ours:
            if s["kind"] == Span.SPAN_KIND_SERVER and s["span_id"] == request_span:
                found["request"] = s
            if (s["kind"] == Span.SPAN_KIND_CONSUMER and s["service"] == "verification"
                    and s["parent"] == request_span):
                found["verification"] = s
            if s["kind"] == Span.SPAN_KIND_CONSUMER and s["span_id"] == activation_span:
                found["activation"] = s
        for s in SPANS:  # the relay's publish spans start their own traces, linked to ours
            if (s["kind"] == Span.SPAN_KIND_PRODUCER and s["service"] == "registration"
                    and (trace_id, request_span) in s["links"]):
                found["relay"] = s
        if "activation" in found:  # the span the activation continues may come a batch later
            parent = found["activation"]["parent"]
            if any(s["span_id"] == parent for s in ours):
                found["activation_parent"] = parent
        return len(found) == 5

    await eventually(exported, timeout=30, what="the services to export the trace's spans")
    request, relay = found["request"], found["relay"]
    verification, activation = found["verification"], found["activation"]
    assert request["service"] == "registration" and "/v1/accounts" in request["name"]
    assert relay["attributes"]["messaging.destination.name"] == system.topic("registration")
    # Each consumed event's span continues the producing span and links to it.
    assert verification["links"] == [(trace_id, request_span)]
    assert verification["attributes"]["cloudevents.event_type"] == (
        "registration.AccountRegistrationSubmitted")
    assert activation["service"] == "registration"
    assert activation["links"] == [(trace_id, activation["parent"])]
    assert activation["parent"] in {s["span_id"] for s in SPANS
                                    if s["service"] == "verification"
                                    and s["trace_id"] == trace_id}
    assert activation["attributes"]["correlation_id"] == submitted["correlation_id"]
