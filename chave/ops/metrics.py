"""``/health/metrics``: Prometheus text exposition of what the operators watch.

Every figure is read from the shared database at scrape time, so any instance answers for the
whole service (several app instances, one database) and nothing is lost when an instance
restarts. Queries are bounded: a recent window of the audit log (its ``at`` index), the
delivery rows that are not yet sent (their ``status`` index), the ready tasks.

- ``chave_events_recent{event,outcome}``: audit events of the last ``window`` seconds (logins,
  PIN attempts, codes sent, card answers, signatures, ...): alert on a surge of ``pin.attempt``
  ``wrong`` or ``code.send`` ``rate_limited``;
- ``chave_delivery_messages{status}``: messages queued, being sent, and failed in the window;
- ``chave_tasks_ready`` and ``chave_tasks_lag_seconds``: the background worker's backlog;
- ``chave_ready{check}``: each readiness check (1 ok, 0 failed), as ``/health/ready`` says.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Count
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from chave import clock

from . import checks

WINDOW_SECONDS = 5 * 60


class _ServiceCollector:
    def collect(self):
        from chave.audit.models import AuditEvent
        from chave.delivery.models import MessageStatus, OutboundMessage

        since = clock.now() - dt.timedelta(seconds=WINDOW_SECONDS)
        events = GaugeMetricFamily("chave_events_recent", f"Audit events in the last {WINDOW_SECONDS} s",
                                   labels=["event", "outcome"])
        for row in (AuditEvent.objects.filter(at__gte=since).values("event", "outcome")
                    .annotate(n=Count("id")).order_by("event", "outcome")):
            events.add_metric([row["event"], row["outcome"] or ""], row["n"])
        yield events

        messages = GaugeMetricFamily("chave_delivery_messages",
                                     f"Messages queued or being sent, and failed in the last {WINDOW_SECONDS} s",
                                     labels=["status"])
        pending = dict(OutboundMessage.objects.filter(status__in=[MessageStatus.QUEUED, MessageStatus.SENDING])
                       .order_by().values_list("status").annotate(n=Count("id")))
        for status in (MessageStatus.QUEUED, MessageStatus.SENDING):
            messages.add_metric([status], pending.get(status, 0))
        messages.add_metric([MessageStatus.FAILED], OutboundMessage.objects.filter(
            status=MessageStatus.FAILED, created_at__gte=since).count())
        yield messages

        code, answer = checks.readiness()
        delivery = answer["checks"]["delivery"]
        yield GaugeMetricFamily("chave_tasks_ready", "Background tasks ready to run", value=delivery.get("waiting", 0))
        yield GaugeMetricFamily("chave_tasks_lag_seconds", "Wait of the oldest ready task",
                                value=delivery.get("lag_seconds", 0))
        ready = GaugeMetricFamily("chave_ready", "Readiness checks (1 ok, 0 failed)", labels=["check"])
        for name, result in answer["checks"].items():
            ready.add_metric([name], 1 if result["ok"] else 0)
        yield ready


def exposition() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ServiceCollector())
    return generate_latest(registry)
