#!/usr/bin/env python3
"""A national population (issue 17, goal 3): logins and counter searches with N citizens (10 million
for the goal; 1 million by default, `--citizens`) against 10 thousand, and the PostgreSQL size per
citizen.

    .venv/bin/python bench/population.py [--citizens N] [--small 10000] [--logins 40] [--rounds 2]

Each population lives in a database of its own on the PostgreSQL server of ``--server`` (default
127.0.0.1:5432), named ``chave_bench_pop_<N>``: created, migrated and seeded with ``COPY`` the
first time (``chave/testing/population.py``: every citizen with an active key, a mobile number and
an e-mail address, one PIN hash with the real Argon2 parameters), reused afterwards when it holds
exactly N citizens (seeding 10 million takes a while; ``--reseed`` starts again).

Logins: one Chave instance pinned to core 0 behind nginx (the ``deploy/`` recipe, as in
``bench/scale.py``), 4 concurrent citizens picked at random across the whole population, every page
of an SMS login over HTTP; the small and large populations alternate for ``--rounds`` rounds so that
other work on the machine weighs on both alike; the ratio of the medians is the goal (within 10%).

Counter searches: the counter's search service (``chave.counter.services.find_citizens``: the form's
parsing, the ORM, the query) by NIC, mobile number, e-mail and name (given name + family name: up to
``counter_name_search_max`` citizens), at random among the population; p50/p95 (goal p95 < 50 ms).

Size: the database, and the identity tables with their indexes; per citizen, what the large
population takes beyond the small one, divided by the citizens it adds.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scale import PIN, Driver, bare_hash_rate, process_tree, cpu_seconds  # noqa: E402

TABLES = ("identity_citizen", "identity_key", "identity_contact")


def admin(server: str):
    import psycopg

    return psycopg.connect(f"{server}/postgres", autocommit=True)


def citizens_in(url: str) -> int | None:
    import psycopg

    try:
        with psycopg.connect(url) as connection:
            return connection.execute("SELECT count(*) FROM identity_citizen").fetchone()[0]
    except psycopg.Error:
        return None


def migrate(url: str, data_dir: Path) -> None:
    import subprocess

    from chave.testing.stack import stack_env

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CHAVE_")}, **stack_env(url, "", data_dir)}
    subprocess.run([sys.executable, "-m", "chave.cli", "migrate", "--noinput", "-v0"], env=env, check=True)


def ensure(server: str, count: int, *, reseed: bool, pin_hash: str, data_dir: Path) -> str:
    from chave.testing import population

    name = f"chave_bench_pop_{count}"
    url = f"{server}/{name}"
    if not reseed and citizens_in(url) == count:
        migrate(url, data_dir)  # a database seeded by an older Chave gets the newer migrations
        print(f"{name}: {count:,} citizens already seeded")
        return url
    with admin(server) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    migrate(url, data_dir)
    start = time.perf_counter()

    def progress(done: int) -> None:
        if done % 1_000_000 == 0 or done == count:
            print(f"  {name}: {done:,} citizens seeded in {time.perf_counter() - start:.0f} s", flush=True)

    population.seed(url, count, pin_hash=pin_hash, progress=progress)
    print(f"{name}: {count:,} citizens seeded with COPY in {time.perf_counter() - start:.0f} s")
    return url


def sizes(url: str) -> dict:
    import psycopg

    with psycopg.connect(url) as connection:
        database = connection.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        tables = {t: connection.execute("SELECT pg_total_relation_size(%s)", [t]).fetchone()[0] for t in TABLES}
    return {"database": database, "identity": sum(tables.values()), **tables}


def logins(url: str, count: int, args, env_base: dict, offset: int) -> tuple[float, list[float], float]:
    """(logins/s, durations, web CPU seconds per login) of args.logins logins of random citizens, one
    instance on core 0."""
    from chave.testing.stack import Stack

    chosen = random.Random(offset).sample(range(count), args.logins + 4)
    env = {**env_base, "CHAVE_DATABASE_URL": url}
    with Stack(1, env, cpus=["0"]) as stack:
        warm = PopulationDriver(stack.url, url, chosen[:4], threads=4, address_offset=offset)
        warm.run()
        web = [p for pid in stack.pids("web") for p in process_tree(pid)]
        before = cpu_seconds(web)
        driver = PopulationDriver(stack.url, url, chosen[4:], threads=args.concurrency, address_offset=offset + 100)
        wall = driver.run()
        cpu = cpu_seconds(web) - before
    ok = [r for _, r in driver.results if r.ok]
    failed = len(driver.results) - len(ok)
    if failed:
        print(f"  {failed} logins FAILED: {[r.step for _, r in driver.results if not r.ok][:5]}")
    return len(ok) / wall, [r.seconds for r in ok], cpu / max(1, len(ok))


class PopulationDriver(Driver):
    """The scale benchmark's driver, over a given list of citizen numbers."""

    def __init__(self, base, database_url, numbers, *, threads, address_offset):
        super().__init__(base, database_url, first=0, logins=len(numbers), threads=threads,
                         address_offset=address_offset)
        self.numbers = numbers

    def _take(self):
        i = super()._take()
        return None if i is None else self.numbers[i] - self.first


def searches(url: str, count: int, n: int) -> dict[str, list[float]]:
    """Milliseconds of the counter's search, per kind, at random among ``count`` citizens."""
    from django.db import connections

    from chave.counter.services import find_citizens
    from chave.testing import population

    connection = connections["default"]
    connection.close()
    connection.settings_dict["NAME"] = url.rsplit("/", 1)[1]
    rng = random.Random(count)
    timings = {"NIC": [], "mobile number": [], "e-mail": [], "name": []}
    for _ in range(n):
        c = rng.randrange(count)
        full, given, family = population.name(c)
        for kind, text in (("NIC", population.nic(c)), ("mobile number", population.phone(c)[4:]),
                           ("e-mail", population.email(c)), ("name", f"{given} {family.split()[0]}")):
            start = time.perf_counter()
            found = find_citizens(text)
            timings[kind].append((time.perf_counter() - start) * 1000)
            if kind != "name":
                assert len(found) == 1 and found[0].doc_number == population.nic(c), (kind, text, found)
            else:
                assert found, text
    connection.close()
    return timings


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--logins", type=int, default=40, help="timed logins per round and population")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--searches", type=int, default=200, help="searches of each kind per population")
    parser.add_argument("--server", default=os.environ.get("CHAVE_BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--no-logins", action="store_true", help="searches and sizes only")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="chave-bench-pop-"))
    from chave.testing.faults import PrivateRedis
    from chave.testing.stack import stack_env

    for key, value in stack_env(f"{args.server}/postgres", "", data_dir).items():
        os.environ.setdefault(key, value)
    os.environ.pop("CHAVE_REDIS_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "chave.settings"
    import django

    django.setup()
    from django.conf import settings

    from chave.identity import pins

    pin_hash = pins.hash_pin(PIN)
    small = ensure(args.server, args.small, reseed=args.reseed, pin_hash=pin_hash, data_dir=data_dir)
    large = ensure(args.server, args.citizens, reseed=args.reseed, pin_hash=pin_hash, data_dir=data_dir)

    s_small, s_large = sizes(small), sizes(large)
    per_citizen = (s_large["database"] - s_small["database"]) / (args.citizens - args.small)
    identity_per = (s_large["identity"] - s_small["identity"]) / (args.citizens - args.small)
    print(f"PostgreSQL size with {args.citizens:,} citizens: database {s_large['database'] / 2**30:.2f} GiB, identity "
          f"tables and indexes {s_large['identity'] / 2**30:.2f} GiB "
          f"({', '.join(f'{t} {s_large[t] / 2**20:.0f} MiB' for t in TABLES)})")
    print(f"per citizen (key, mobile, e-mail, their indexes): {per_citizen:.0f} bytes of database, "
          f"{identity_per:.0f} bytes in the identity tables")

    for label, url, count in (("small", small, args.small), ("large", large, args.citizens)):
        timings = searches(url, count, args.searches)
        worst = max(percentile(v, 0.95) for v in timings.values())
        print(f"counter search, {count:,} citizens: " + "; ".join(
            f"{kind} p50 {statistics.median(v):.1f} ms p95 {percentile(v, 0.95):.1f} ms" for kind, v in timings.items())
            + (f" (goal p95 < 50 ms: {'met' if worst < 50 else 'NOT met'})" if label == "large" else ""))

    if args.no_logins:
        return 0
    redis = PrivateRedis()
    redis.start()
    try:
        env = stack_env("", redis.url, data_dir)
        p = settings.CHAVE_ARGON2
        print(f"Argon2id t={p['time_cost']} m={p['memory_cost']} KiB; bare PIN verifications on core 0: "
              f"{bare_hash_rate():.2f}/s; load average {os.getloadavg()[0]:.1f}")
        rates = {"small": [], "large": []}
        for round_ in range(args.rounds):
            for label, url, count in (("small", small, args.small), ("large", large, args.citizens)):
                rate, durations, cpu = logins(url, count, args, env, offset=40000 + round_ * 2000
                                              + (1000 if label == "large" else 0))
                rates[label].append(rate)
                print(f"  round {round_ + 1}, {count:,} citizens: {rate:.2f} logins/s (p50 "
                      f"{statistics.median(durations) * 1000:.0f} ms; web CPU {cpu * 1000:.0f} ms per login)")
        small_rate, large_rate = statistics.median(rates["small"]), statistics.median(rates["large"])
        ratio = large_rate / small_rate
        print(f"logins with {args.citizens:,} citizens / with {args.small:,}: {large_rate:.2f} / {small_rate:.2f} = "
              f"{ratio:.2f} (goal within 10%: {'met' if ratio >= 0.9 else 'NOT met'}); load average "
              f"{os.getloadavg()[0]:.1f}")
    finally:
        redis.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
