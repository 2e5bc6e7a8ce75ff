"""The OpenTelemetry hand-off: L3 verdicts as OTLP logs, per-flow counters as OTLP metrics.

Place in the pipeline: after the reason engine, for fleets that already run a collector
(``gew export FILE --otlp ENDPOINT``, and ``--otlp`` on a serving session). gew does not
stitch anything across hosts; it hands each flow's verdict over with its evidence ids.

A verdict is one log record per flow with an L3 chain: body the L3 text, severity from the
chain (info, warning, critical), attributes ``gew.session_id``, ``gew.flow.id``,
``gew.flow.key``, ``gew.templates`` (the L2 template ids), ``gew.severity`` and
``gew.evidence_event_ids``. Counters are cumulative sums per flow (``gew.flow.<counter>``,
attributes ``gew.flow.id`` and ``gew.flow.key``). The OpenTelemetry SDK builds both; the OTLP
gRPC exporters send them, and a failed export is one line, not a retry loop in the
background. Loopback or ``http://`` endpoints are plain, others TLS.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Sequence
from urllib.parse import urlparse

from gewtui.errors import EX_UNAVAILABLE, GewError, UsageError
from gewtui.pb import model_pb2

COUNTERS = ("events", "retransmits", "resets_sent", "resets_received", "drops", "segments", "bytes",
            "zero_window_segments", "connections")


def _endpoint(text: str) -> tuple[str, bool]:
    """(host:port, insecure) of ENDPOINT, ``http(s)://HOST:PORT`` or ``HOST:PORT``."""
    u = urlparse(text if "://" in text else f"grpc://{text}")
    if not u.hostname or not u.port:
        raise UsageError(f"--otlp {ascii(text)[:60]}: expected HOST:PORT or http(s)://HOST:PORT")
    loop = u.hostname in ("localhost", "127.0.0.1", "::1")
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return f"{host}:{u.port}", u.scheme == "http" or (u.scheme == "grpc" and loop)


def _severity(text: str) -> Any:
    from opentelemetry._logs import SeverityNumber

    return {"critical": SeverityNumber.ERROR, "warning": SeverityNumber.WARN}.get(text, SeverityNumber.INFO)


def verdict_attributes(chain: model_pb2.ReasonChain, flow: model_pb2.FlowSnapshot | None,
                       session_id: str) -> dict[str, Any]:
    root = chain.root
    evidence = sorted({e for n in root.children for e in n.evidence_event_ids} | set(root.evidence_event_ids))
    return {
        "gew.session_id": session_id,
        "gew.flow.id": int(chain.flow_id),
        "gew.flow.key": flow.key if flow is not None else "",
        "gew.templates": [n.kind for n in root.children if n.layer == model_pb2.L2],
        "gew.severity": root.severity or "info",
        "gew.evidence_event_ids": [int(e) for e in evidence[:1000]],
    }


class _Collect:
    """A LogRecordExporter that keeps what the SDK built, so the real export is one call
    whose result we see."""

    def __init__(self) -> None:
        self.batch: list[Any] = []

    def export(self, batch: Sequence[Any]) -> Any:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        self.batch.extend(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None: ...

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class OtlpSink:
    """Builds verdict logs and flow metrics with the SDK and sends them on ``flush()``."""

    def __init__(self, endpoint: str, session_id: str, *, timeout_s: float = 10.0):
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.resources import Resource

        from gewtui import __version__

        # the exporters log their own retries; the one line gew prints is the result
        logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
        self.target, self.insecure = _endpoint(endpoint)
        self.endpoint = endpoint
        self.session_id = session_id
        self.timeout_s = timeout_s
        res = Resource.create({"service.name": "gew", "service.version": __version__,
                               "gew.session_id": session_id})
        self._collect = _Collect()
        self._logs = LoggerProvider(resource=res)
        self._logs.add_log_record_processor(SimpleLogRecordProcessor(self._collect))
        self._logger = self._logs.get_logger("gewtui.control.otlp", __version__)
        self._reader = InMemoryMetricReader()
        self._meters = MeterProvider(resource=res, metric_readers=[self._reader])
        meter = self._meters.get_meter("gewtui.control.otlp", __version__)
        self._counters = {c: meter.create_counter(f"gew.flow.{c}", unit="1",
                                                  description=f"the flow's {c.replace('_', ' ')}")
                          for c in COUNTERS}
        self._last: dict[int, tuple[int, ...]] = {}
        self._sent_verdicts: dict[int, bytes] = {}
        self.logs_sent = 0
        self.metric_points = 0

    def add(self, chains: Iterable[model_pb2.ReasonChain], flows: dict[int, model_pb2.FlowSnapshot]) -> int:
        """Queue each verdict that is new or changed since the last call, and each flow's
        counter increments. Returns how many verdicts were queued."""
        n = 0
        for ch in chains:
            if not ch.HasField("root"):
                continue
            mark = ch.root.SerializeToString(deterministic=True)
            if self._sent_verdicts.get(ch.flow_id) == mark:
                continue
            self._sent_verdicts[ch.flow_id] = mark
            f = flows.get(ch.flow_id)
            self._logger.emit(timestamp=time.time_ns(), severity_number=_severity(ch.root.severity),
                              severity_text=ch.root.severity or "info", body=ch.root.text,
                              event_name="gew.verdict", attributes=verdict_attributes(ch, f, self.session_id))
            n += 1
        for fid, f in flows.items():
            now = tuple(getattr(f.counters, c) for c in COUNTERS)
            before = self._last.get(fid, (0,) * len(COUNTERS))
            attrs = {"gew.flow.id": int(fid), "gew.flow.key": f.key}
            for c, a, b in zip(COUNTERS, now, before):
                if a > b:
                    self._counters[c].add(a - b, attrs)
            self._last[fid] = now
        return n

    def flush(self) -> tuple[int, int]:
        """Send what was queued; (log records, metric data points) sent. GewError on failure."""
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk._logs.export import LogRecordExportResult
        from opentelemetry.sdk.metrics.export import MetricExportResult

        batch, self._collect.batch = self._collect.batch, []
        points = 0
        if batch:
            exp = OTLPLogExporter(endpoint=self.target, insecure=self.insecure, timeout=self.timeout_s)
            try:
                if exp.export(batch) != LogRecordExportResult.SUCCESS:
                    raise GewError(f"--otlp {self.endpoint}: the collector did not take the verdicts", EX_UNAVAILABLE)
            finally:
                exp.shutdown()
            self.logs_sent += len(batch)
        data = self._reader.get_metrics_data()
        if data is not None and data.resource_metrics:
            points = sum(len(m.data.data_points) for rm in data.resource_metrics
                         for sm in rm.scope_metrics for m in sm.metrics)
            mexp = OTLPMetricExporter(endpoint=self.target, insecure=self.insecure, timeout=self.timeout_s)
            try:
                if mexp.export(data) != MetricExportResult.SUCCESS:
                    raise GewError(f"--otlp {self.endpoint}: the collector did not take the flow counters",
                                   EX_UNAVAILABLE)
            finally:
                mexp.shutdown()
            self.metric_points += points
        return len(batch), points

    def close(self) -> None:
        self._logs.shutdown()
        self._meters.shutdown()
