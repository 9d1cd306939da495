"""``python -m demo_portal --issuer URL --client-id ID [--port 8001]`` (from ``examples/``); the SAML
portal: ``python -m demo_portal --saml --issuer URL [--port 8002]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import Config, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo_portal", description="The Demo Portal: log in with Chave.")
    parser.add_argument("--issuer", required=True, help="Chave's issuer URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--client-id", help="the client_id Chave registered this portal as (OpenID Connect)")
    parser.add_argument("--saml", action="store_true", help="the SAML portal (Chave registers its metadata, "
                                                              "at /saml/metadata)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--data-dir", default="var/demo_portal", help="where the portal keeps its private key")
    args = parser.parse_args(argv)
    base_url = f"http://{args.host}:{args.port}"
    if args.saml:
        from .saml_app import SamlConfig

        config = SamlConfig(issuer=args.issuer.rstrip("/"), base_url=base_url, data_dir=Path(args.data_dir))
    elif not args.client_id:
        parser.error("--client-id is needed (or --saml)")
    else:
        config = Config(issuer=args.issuer.rstrip("/"), client_id=args.client_id, base_url=base_url,
                        data_dir=Path(args.data_dir))
    try:
        serve(config, host=args.host, port=args.port,
              ready=lambda port: print(f"Demo portal at {base_url}/ (Chave: {config.issuer})", flush=True))
    except OSError as exc:
        print(f"Cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
