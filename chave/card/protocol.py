"""The card agent protocol: what is signed, and the names of the fields (see ``PROTOCOL.md``).

Shared by the server (which rebuilds the payload from its own challenge and origin and checks
the signature over it) and the agent (which builds it from the challenge it was given and the
one origin it serves). Nothing here touches the database.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import urlsplit

PAYLOAD_TYPE = "chave-card-auth/1"

# Form fields Chave's card page sends to the agent (POST /sign).
F_CHALLENGE_ID = "challenge_id"
F_CHALLENGE = "challenge"
F_RETURN_URL = "return_url"
F_LANGUAGE = "lang"
# Form fields the agent's page sends back to Chave (POST <return_url>).
F_ORIGIN = "origin"
F_CERTIFICATE = "certificate"  # base64 (standard) DER of the authentication certificate
F_SIGNATURE = "signature"  # base64 (standard) signature over signed_payload(...)
F_CHAIN = "chain"  # optional, repeated: base64 DER of further certificates the card holds


def signed_payload(*, challenge_id: str, challenge: str, origin: str) -> bytes:
    """The exact bytes the card signs: canonical JSON (sorted keys, no spaces, ASCII)."""
    return json.dumps(
        {"challenge": challenge, "challenge_id": challenge_id, "origin": origin, "type": PAYLOAD_TYPE},
        sort_keys=True, separators=(",", ":"), ensure_ascii=True,
    ).encode("ascii")


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased, default ports dropped; "" when it has none."""
    try:
        parts = urlsplit((url or "").strip())
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, *, limit: int = 16384) -> bytes:
    """Decode standard or URL-safe base64 (padding optional); ``ValueError`` when malformed or too long."""
    text = (text or "").strip()
    if not text or len(text) > limit:
        raise ValueError("empty or too long")
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
