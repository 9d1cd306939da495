#!/usr/bin/env python3
"""``make load``: the Locust scenarios of bench/load/locustfile.py against a running Chave, with
p50/p95/p99 printed and plotted (PNG, bench/load/results/).

    .venv/bin/python bench/load/run.py [--users 12] [--time 90s] [--instances 2] [--citizens 5000]

By default it first brings up the stack of ``deploy/`` on this machine (``chave/testing/stack.py``:
``--instances`` web instances and workers, each pinned to its core, behind nginx; a private Redis;
PostgreSQL database ``chave_bench_load`` on 127.0.0.1:5432, emptied, migrated and seeded with
``--citizens`` citizens by COPY; a portal registered with ``private_key_jwt``), runs Locust headless
against nginx, and stops the stack. ``--url URL --database-url URL --portal FILE`` drive a stack
that is already running instead (its citizens seeded by ``chave/testing/population.py`` with PIN
4719 and CHAVE_ENV=test, so that codes go to the development sink the phone reads).

Printed: for each scenario, complete logins per second and their p50/p95/p99, failures; the goals'
ratios: all logins per second against the bare PIN-hash rate of the cores in use (issue 17 goal 1:
>= 0.8) and p95 <= 2 x p50 (goal 4).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

from scale import PIN, bare_hash_rate, fresh_database, setup_django  # noqa: E402

RESULTS = HERE / "results"
SCENARIOS = ("complete SMS login", "complete OIDC login")
BATCH = "signing batch of 100 hashes"
SIGNING_PIN = "5820"


def register_portal(issuer: str, folder: Path) -> Path:
    from joserfc.jwk import RSAKey

    from chave.federation import services as federation
    from chave.oidc import services

    key = RSAKey.generate_key(2048, private=True)
    key.ensure_kid()
    redirect_uri = "https://portal-de-carga.example.gov.pt/callback"
    registration = services.register_relying_party(
        name="Portal de Carga", entity_nif="600084779", contact_email="carga@portal.example.gov.pt",
        redirect_uris=[redirect_uri], allowed_attributes=["NomeCompleto", "NomeProprio", "NIC"],
        mandatory_attributes=["NomeCompleto"], jwks={"keys": [key.as_dict(private=False)]}, by="load")
    client_id = federation.decide(registration.relying_party, "approve", by="load").client_id
    path = folder / "portal.json"  # a private key: in the run's temporary folder, never in the repository
    path.write_text(json.dumps({"client_id": client_id, "jwk": key.as_dict(private=True),
                                "redirect_uri": redirect_uri, "issuer": issuer}))
    return path


def prepare_signing(signers: int, folder: Path) -> Path:
    """The development signing PKI and HSM token, signing active for citizens 0…signers-1 (a key
    each in the HSM), and an integrator registered for the CSC API (client_secret_basic)."""
    from django.core.management import call_command

    from chave.federation import services as federation
    from chave.identity.models import Key
    from chave.oidc import services
    from chave.signing import services as signing

    call_command("signing", "dev-pki", verbosity=0)
    for key in Key.objects.select_related("citizen").order_by("id")[:signers]:
        signing.activate_signing(key, SIGNING_PIN, by="load")
    registration = services.register_relying_party(
        name="Plataforma de Assinatura", entity_nif="600084779", contact_email="assina@docs.example.gov.pt",
        redirect_uris=["https://assina.example.gov.pt/cb"], allowed_attributes=["NomeCompleto"],
        auth_method="client_secret_basic")
    client_id = federation.decide(registration.relying_party, "approve", by="load", reason="signing integrator").client_id
    path = folder / "integrator.json"  # a secret: in the run's temporary folder only
    path.write_text(json.dumps({"client_id": client_id, "secret": registration.client_secret}))
    return path


def read_stats(prefix: Path) -> dict[str, dict]:
    with open(f"{prefix}_stats.csv") as f:
        return {row["Name"] if row["Type"] in ("LOGIN", "") else f"{row['Type']} {row['Name']}": row
                for row in csv.DictReader(f)}


def plot(prefix: Path, stats: dict[str, dict], title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(exist_ok=True)
    written = []
    # Percentiles of each complete login and of the pages it is made of.
    names = [n for n in (*SCENARIOS, BATCH, "POST /login/", "POST /login/channel/", "POST /login/code/",
                         "GET /oidc/authorize", "POST /oidc/token") if n in stats and int(stats[n]["Request Count"])]
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.27
    for i, (p, color) in enumerate((("50%", "#4c72b0"), ("95%", "#dd8452"), ("99%", "#c44e52"))):
        values = [float(stats[n][p]) for n in names]
        ax.bar([x + (i - 1) * width for x in range(len(names))], values, width, label=f"p{p[:-1]}", color=color)
    ax.set_xticks(range(len(names)), [n.replace("complete ", "").replace(" of 100 hashes", "\n(100 hashes)")
                                      .replace(" ", "\n", 1) for n in names], fontsize=8)
    ax.set_ylabel("milliseconds")
    ax.set_title(f"Latency percentiles (complete logins, then the pages that take longest)\n{title}", fontsize=10)
    ax.legend()
    fig.tight_layout()
    path = RESULTS / "latency-percentiles.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)

    with open(f"{prefix}_stats_history.csv") as f:
        rows = list(csv.DictReader(f))
    fig, ax = plt.subplots(figsize=(10, 5))
    for name, style in zip((*SCENARIOS, BATCH), ("-", "--", ":")):
        series = [r for r in rows if r["Name"] == name and r["50%"] not in ("N/A", "0", "")]
        if not series:
            continue
        t0 = int(rows[0]["Timestamp"])
        times = [int(r["Timestamp"]) - t0 for r in series]
        for p, color in (("50%", "#4c72b0"), ("95%", "#dd8452"), ("99%", "#c44e52")):
            ax.plot(times, [float(r[p]) for r in series], style, color=color, label=f"{name}, p{p[:-1]}")
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("milliseconds (over the run so far)")
    ax.set_title(f"Complete logins over time\n{title}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = RESULTS / "latency-over-time.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    return written


def run_locust(url: str, database_url: str, portal: Path, citizens: int, args, folder: Path,
               integrator: Path | None = None) -> Path:
    prefix = folder / "chave"
    env = {**os.environ, "CHAVE_LOAD_DATABASE_URL": database_url, "CHAVE_LOAD_CITIZENS": str(citizens),
           "CHAVE_LOAD_PIN": PIN, "CHAVE_LOAD_PORTAL": str(portal)}
    if integrator is not None:
        env.update(CHAVE_LOAD_SIGNERS=str(args.signers), CHAVE_LOAD_SIGNING_PIN=SIGNING_PIN,
                   CHAVE_LOAD_INTEGRATOR=str(integrator))
    command = [str(Path(sys.executable).parent / "locust"), "-f", str(HERE / "locustfile.py"), "--headless",
               "--host", url, "-u", str(args.users), "-r", str(args.spawn_rate), "-t", args.time,
               "--csv", str(prefix), "--csv-full-history", "--only-summary", "--stop-timeout", "30",
               "--loglevel", "WARNING"]
    subprocess.run(command, env=env, check=False)
    return prefix


def summarise(stats: dict[str, dict], hash_rate: float, cores: int) -> str:
    lines = []
    total = 0.0
    worst_spread = 0.0
    for name in SCENARIOS:
        row = stats.get(name)
        if not row or not int(row["Request Count"]):
            continue
        rate = float(row["Requests/s"])
        total += rate
        p50, p95, p99 = (float(row[p]) for p in ("50%", "95%", "99%"))
        worst_spread = max(worst_spread, p95 / p50 if p50 else 0)
        lines.append(f"{name}: {row['Request Count']} ({row['Failure Count']} failed), {rate:.2f}/s; "
                     f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms")
    ratio = total / (hash_rate * cores) if hash_rate else 0
    row = stats.get(BATCH)
    if row and int(row["Request Count"]):
        lines.append(f"{BATCH}: {row['Request Count']} ({row['Failure Count']} failed), {float(row['Requests/s']):.2f}/s; "
                     f"p50 {float(row['50%']):.0f} ms, p95 {float(row['95%']):.0f} ms, p99 {float(row['99%']):.0f} ms")
    lines.append(f"all complete logins: {total:.2f}/s on {cores} cores; bare PIN verifications {hash_rate:.2f}/s per "
                 f"core: ratio {ratio:.2f} (goal 1 >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})")
    lines.append(f"p95 / p50 of complete logins at most {worst_spread:.2f} (goal 4 <= 2: "
                 f"{'met' if worst_spread <= 2 else 'NOT met'})")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=12)
    parser.add_argument("--spawn-rate", type=float, default=4)
    parser.add_argument("--time", default="90s")
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--citizens", type=int, default=5000)
    parser.add_argument("--url", default=os.environ.get("LOAD_URL"), help="a running stack (else one is started)")
    parser.add_argument("--database-url", default=os.environ.get(
        "CHAVE_BENCH_LOAD_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/chave_bench_load"))
    parser.add_argument("--signers", type=int, default=30,
                        help="citizens with signing active (a key each in the HSM; 0: no signing batches)")
    parser.add_argument("--integrator", help="with --url: the signing integrator's JSON file (client_id, secret)")
    parser.add_argument("--portal", help="with --url: the portal's JSON file (client_id, jwk, redirect_uri, issuer)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="chave-load-"))
    if args.url:
        if not args.portal:
            parser.error("--url needs --portal")
        prefix = run_locust(args.url, args.database_url, Path(args.portal), args.citizens, args, folder,
                            Path(args.integrator) if args.integrator else None)
        stats = read_stats(prefix)
        print(summarise(stats, 0.0, os.cpu_count() or 1))
        for path in plot(prefix, stats, f"{args.users} users against {args.url}"):
            print(f"plot: {path.relative_to(HERE.parent.parent)}")
        return 0

    from chave.testing.faults import PrivateRedis
    from chave.testing.stack import Stack, stack_env

    redis = PrivateRedis()
    redis.start()
    try:
        os.environ["CHAVE_REDIS_URL"] = redis.url
        setup_django(args.database_url, folder / "data")
        from django.conf import settings

        from chave.identity import pins
        from chave.testing import population

        fresh_database(args.database_url)
        population.seed(args.database_url, args.citizens, pin_hash=pins.hash_pin(PIN))
        integrator = prepare_signing(args.signers, folder) if args.signers else None
        hash_rate = bare_hash_rate()
        stack = Stack(args.instances, stack_env(args.database_url, redis.url, folder / "data"),
                      cpus=[str(i) for i in range(args.instances)])
        with stack:
            portal = register_portal(stack.url, folder)
            prefix = run_locust(stack.url, args.database_url, portal, args.citizens, args, folder, integrator)
        stats = read_stats(prefix)
        p = settings.CHAVE_ARGON2
        title = (f"{args.instances} instances on {args.instances} cores behind nginx, PostgreSQL + Redis, "
                 f"{args.users} users, Argon2id t={p['time_cost']} m={p['memory_cost'] // 1024} MiB")
        print(f"Locust {args.users} users for {args.time}: {title}")
        print(summarise(stats, hash_rate, args.instances))
        for path in plot(prefix, stats, title):
            print(f"plot: {path.relative_to(HERE.parent.parent)}")
        print(f"Locust's CSV files: {prefix}_stats.csv, {prefix}_stats_history.csv")
    finally:
        redis.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
