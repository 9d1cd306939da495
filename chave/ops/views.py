"""``/health/live`` and ``/health/ready`` (:mod:`chave.ops.checks`): JSON, never cached, no session.
Readiness and ``/health/metrics`` (:mod:`chave.ops.metrics`) answer only clients in ``CHAVE_HEALTH_NETWORKS`` (others get 404, as for a page that
does not exist): its checks touch the database, the cache and the HSM."""

import ipaddress

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from chave.login.services import client_ip

from . import checks, metrics


def _from_operators(request) -> bool:
    address = client_ip(request)
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(n, strict=False) for n in settings.CHAVE_HEALTH_NETWORKS)


@never_cache
@require_safe
def live(request):
    return JsonResponse(checks.liveness())


@never_cache
@require_safe
def ready(request):
    if not _from_operators(request):
        raise Http404
    code, answer = checks.readiness()
    return JsonResponse(answer, status=code)


@never_cache
@require_safe
def prometheus(request):
    if not _from_operators(request):
        raise Http404
    return HttpResponse(metrics.exposition(), content_type="text/plain; version=0.0.4; charset=utf-8")
