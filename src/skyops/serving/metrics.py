"""The server's Prometheus metrics (prometheus-client), on a registry of its own, served at GET /metrics.

    skyops_requests_total{status}                  /invocations answered, by HTTP status
    skyops_request_latency_seconds                 histogram of /invocations latency, body read to response
    skyops_requests_in_flight                      admitted and not yet answered
    skyops_queue_depth                             admitted and waiting for an inference worker
    skyops_images_total                            images run through the model
    skyops_model_info{model, version, backend, ...} 1, labelled with what is served
    skyops_model_ready                             1 once the model is loaded and warm (what /ping says)
    skyops_capture_records_total                   capture records written
    skyops_capture_dropped_total{reason}           sampled events not written: queue_full, stopped
    skyops_capture_errors_total                    write failures (each stops capture)
    skyops_capture_enabled                         1 while capture writes, 0 after a failure (absent without capture)

A registry per server (not the process-wide default) keeps two servers in one process apart (tests).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Seconds; a request is ~10 ms on 2 cores when idle, seconds when queued behind a burst.
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24)
CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class CaptureMetrics:
    records: Counter
    dropped: Counter
    errors: Counter
    enabled: Gauge


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("skyops_requests", "Invocations answered, by HTTP status.", ["status"], registry=r)
        self.latency = Histogram("skyops_request_latency_seconds", "Invocation latency.", buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("skyops_requests_in_flight", "Invocations admitted and not yet answered.", registry=r)
        self.queue_depth = Gauge("skyops_queue_depth", "Invocations admitted and waiting for an inference worker.", registry=r)
        self.images = Counter("skyops_images", "Images run through the model.", registry=r)
        self.model_info = Gauge(
            "skyops_model_info", "The model served (value 1).", ["model", "version", "backend", "imgsz", "weights_sha256"], registry=r
        )
        self.ready = Gauge("skyops_model_ready", "1 once the model is loaded and warm.", registry=r)
        self._capture: CaptureMetrics | None = None

    def capture(self) -> CaptureMetrics:
        """The capture writer's metrics, created on first use (a server without capture does not show them)."""
        if self._capture is None:
            r = self.registry
            self._capture = CaptureMetrics(
                records=Counter("skyops_capture_records", "Capture records written.", registry=r),
                dropped=Counter("skyops_capture_dropped", "Sampled events not written.", ["reason"], registry=r),
                errors=Counter("skyops_capture_errors", "Capture write failures; each stops capture.", registry=r),
                enabled=Gauge("skyops_capture_enabled", "1 while data capture writes.", registry=r),
            )
        return self._capture

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
