"""``/health/live`` and ``/health/ready`` (:mod:`chave.ops.checks`): JSON, never cached, no session."""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import checks


@never_cache
@require_safe
def live(request):
    return JsonResponse(checks.liveness())


@never_cache
@require_safe
def ready(request):
    code, answer = checks.readiness()
    return JsonResponse(answer, status=code)
