"""A small HTTP client for gateway providers (stdlib only), mapping failures to our two kinds."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

from django.conf import settings

from . import PermanentFailure, TemporaryFailure


def request(method: str, url: str, *, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=settings.CHAVE_HTTP_TIMEOUT) as response:
            return response.status, response.read(65536)
    except urllib.error.HTTPError as exc:
        body = exc.read(2048)
        status = exc.code
        snippet = body.decode("utf-8", "replace")[:120]
        if status == 429 or status >= 500:
            raise TemporaryFailure(f"gateway answered {status}: {snippet}") from None
        raise PermanentFailure(f"gateway refused with {status}: {snippet}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        raise TemporaryFailure(f"gateway unreachable: {getattr(exc, 'reason', exc)}") from None
    except http.client.HTTPException as exc:
        # A garbled or cut answer (BadStatusLine, IncompleteRead): not an OSError, still transient.
        raise TemporaryFailure(f"gateway answered badly: {exc.__class__.__name__}") from None


def post_json(url: str, payload: dict, headers: dict) -> tuple[int, dict]:
    status, body = request(
        "POST", url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json", **headers}
    )
    try:
        return status, json.loads(body or b"{}")
    except ValueError:
        return status, {}
