"""Prometheus metrics, named per stage; label values are bounded (statuses, kinds)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

POLLS = Counter("feedhub_polls", "Source polls by outcome", ["status"], registry=REGISTRY)
FETCH_SECONDS = Histogram("feedhub_fetch_duration_seconds", "Time to fetch one source",
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=REGISTRY)
FETCHED_BYTES = Counter("feedhub_fetched_bytes", "Body bytes fetched from sources",
                        registry=REGISTRY)
ENTRIES = Counter("feedhub_entries", "Entries stored, by kind (new, updated)", ["kind"],
                  registry=REGISTRY)
DOCUMENTS = Counter("feedhub_documents_rendered", "Rendered documents whose bytes changed",
                    registry=REGISTRY)
LAST_SUCCESS = Gauge("feedhub_last_success_timestamp_seconds",
                     "Unix time of the last successful poll of any source in a category",
                     ["category"], registry=REGISTRY)
SOURCES = Gauge("feedhub_sources", "Configured sources by last poll result", ["state"],
                registry=REGISTRY)
WEBHOOK_DELIVERIES = Counter("feedhub_webhook_deliveries",
                             "Webhook delivery attempts by result (delivered, failed, given_up)",
                             ["result"], registry=REGISTRY)
WEBHOOK_PENDING = Gauge("feedhub_webhook_pending", "Webhook deliveries waiting in the store, "
                        "by state (pending, given_up)", ["state"], registry=REGISTRY)
