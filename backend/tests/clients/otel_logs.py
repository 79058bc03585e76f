"""Sends log records to Vigil with the OpenTelemetry Python SDK's OTLP/HTTP exporter.

Environment: VIGIL_URL, VIGIL_TOKEN, MARKER (a word in every message), OTLP_PROTOCOL
(protobuf or json), OTLP_COMPRESSION (none or gzip).
"""
import logging
import os
import sys
import warnings

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

url = os.environ["VIGIL_URL"] + "/v1/logs"
headers = {"Authorization": "Bearer " + os.environ["VIGIL_TOKEN"]}
marker = os.environ["MARKER"]
compression = os.environ.get("OTLP_COMPRESSION", "none")

if os.environ.get("OTLP_PROTOCOL", "protobuf") == "json":
    from opentelemetry.exporter.otlp.common.http import Compression
    from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter

    exporter = OTLPLogExporter(endpoint=url, headers=headers, compression=Compression.from_str(compression), timeout=10)
else:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    choice = {"none": Compression.NoCompression, "gzip": Compression.Gzip}[compression]
    exporter = OTLPLogExporter(endpoint=url, headers=headers, compression=choice, timeout=10)

provider = LoggerProvider(resource=Resource.create({"service.name": "checkout-otel", "host.name": "ci-host-1"}))
provider.add_log_record_processor(BatchLogRecordProcessor(exporter))

# The standard library's logging, bridged.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
log = logging.getLogger("checkout")
log.setLevel(logging.DEBUG)
log.addHandler(handler)
log.propagate = False
log.info("%s order placed", marker, extra={"order.id": "A-1", "user.id": 42})
log.warning("%s stock low: %d left", marker, 3)

# The Logs API: a record in a span, and one with no severity (Vigil detects it from the body).
logger = provider.get_logger("checkout.direct", "1.0.0")
span = SpanContext(trace_id=0x0102030405060708090A0B0C0D0E0F10, span_id=0x1112131415161718, is_remote=False,
                   trace_flags=TraceFlags(TraceFlags.SAMPLED))
logger.emit(body=f"{marker} payment failed", severity_number=SeverityNumber.ERROR, severity_text="ERROR",
            attributes={"retries": 3}, context=trace.set_span_in_context(NonRecordingSpan(span)))
logger.emit(body=f"WARN {marker} no severity given")

# force_flush answers True even when an export failed: the test checks what Vigil stored.
provider.force_flush(timeout_millis=10_000)
provider.shutdown()
sys.exit(0)
