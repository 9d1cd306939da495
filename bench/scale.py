#!/usr/bin/env python3
"""Several instances (issue 17, goal 2): complete logins over HTTP with one Chave instance on one
core, then two instances on two cores, behind nginx, sharing PostgreSQL and Redis.

    .venv/bin/python bench/scale.py [--logins N] [--concurrency-per-instance C] [--database-url URL]

The stack is the operators' recipe of ``deploy/`` (systemd units, nginx site) started on this
machine by ``chave/testing/stack.py``: each web instance and its delivery worker pinned to one core
(``CPUAffinity=`` via ``taskset``), nginx in front, the database a PostgreSQL database the benchmark
may wipe (default ``chave_bench_scale`` on 127.0.0.1:5432, created if missing), Redis a private
``redis-server`` of its own. Citizens are seeded with ``COPY`` (one PIN hash, the real Argon2
parameters). The load driver is this process: ``C`` threads per instance, each login a fresh browser
from its own loopback address (per-address throttles count each citizen apart) through every page:
login page → identifier + PIN → SMS chosen → the code read from the development sink once the
worker has handed it over → code → signed-in page.

Printed: logins/s for each, the ratio (goal >= 1.8), the bare PIN-hash rate of one core for
scale, and the checks that two instances behave as one: every login got exactly one code (none
lost, none doubled, though two workers share the queue); logins whose pages were answered by both
instances (one session, shared); and wrong PINs from one address through nginx, spread over both
instances, refused from the ``pin_attempt_per_ip`` limit on (counted once, not once per instance).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PIN = "4719"


def setup_django(database_url: str, data_dir: Path):
    from chave.testing.stack import stack_env

    for key, value in stack_env(database_url, "redis://127.0.0.1:1/0", data_dir).items():
        os.environ.setdefault(key, value)
    os.environ["DJANGO_SETTINGS_MODULE"] = "chave.settings"
    import django

    django.setup()


def fresh_database(url: str) -> None:
    """Create the database if missing, else empty it (its own schema), then migrate."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def bare_hash_rate(seconds: float = 6.0, core: str = "0", **env: str) -> float:
    """PIN verifications per second of one process pinned to one core (the ceiling per core)."""
    return _bare_hashes(seconds, core, **env)[0]


def _bare_hashes(seconds: float, core: str, **env: str) -> tuple[float, float]:
    """(verifications per second of wall time, CPU seconds per verification), one pinned process."""
    code = ("import time; from chave.identity import pins\n"
            f"h = pins.hash_pin('{PIN}'); pins.verify(h, '{PIN}'); n = 0; t = time.perf_counter(); c = time.process_time()\n"
            f"while time.perf_counter() - t < {seconds}:\n    pins.verify(h, '{PIN}'); n += 1\n"
            "print(n / (time.perf_counter() - t), (time.process_time() - c) / n)")
    script = f"import django; django.setup()\n{code}"
    out = subprocess.run(["taskset", "-c", core, sys.executable, "-c", script], env={**os.environ, **env},
                         capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
    rate, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(rate), float(cpu)


OWASP_ARGON2 = {"CHAVE_ARGON2_MEMORY_KIB": "19456", "CHAVE_ARGON2_TIME_COST": "2", "CHAVE_ARGON2_PARALLELISM": "1"}


def database_backends(database_url: str) -> list[int]:
    """The PostgreSQL server processes serving Chave's connections to this database (the phone's aside)."""
    import psycopg

    from chave.testing.httpcitizen import PHONE_APPLICATION

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url, autocommit=True, application_name=PHONE_APPLICATION) as connection:
        rows = connection.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name <> %s",
                                  [name, PHONE_APPLICATION]).fetchall()
    return [pid for (pid,) in rows]


class Driver:
    """Runs ``logins`` complete logins with ``threads`` threads against ``base``; citizens from ``first``."""

    def __init__(self, base: str, database_url: str, *, first: int, logins: int, threads: int, address_offset: int):
        self.base, self.url = base, database_url
        self.first, self.logins, self.threads = first, logins, threads
        self.address_offset = address_offset
        self.next = 0
        self.lock = threading.Lock()
        self.results = []

    def _take(self) -> int | None:
        with self.lock:
            if self.next >= self.logins:
                return None
            self.next += 1
            return self.next - 1

    def _run(self):
        from chave.testing import population
        from chave.testing.httpcitizen import Browser, Phone, sms_login, source_address

        phone = Phone(self.url)
        try:
            while (i := self._take()) is not None:
                n = self.first + i
                browser = Browser(self.base, source=source_address(self.address_offset + i))
                try:
                    result = sms_login(browser, phone, population.phone(n), PIN)
                except Exception as exc:  # a refused connection, a timeout: a failed login, counted
                    from chave.testing.httpcitizen import Login

                    result = Login(False, 0.0, 0.0, f"{type(exc).__name__}: {exc}")
                finally:
                    browser.close()
                with self.lock:
                    self.results.append((n, result))
        finally:
            phone.close()

    def run(self) -> float:
        workers = [threading.Thread(target=self._run) for _ in range(self.threads)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return time.perf_counter() - start


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of processes and their children so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    pids = [pid]
    for child in out:
        pids += process_tree(int(child))
    return pids


def phase(label: str, instances: int, args, env: dict, *, first: int, address_offset: int) -> dict:
    from chave.testing.stack import Stack

    cpus = [str(i) for i in range(instances)]
    with Stack(instances, dict(env), cpus=cpus) as stack:
        warm = Driver(stack.url, args.database_url, first=first, logins=2 * instances, threads=2 * instances,
                      address_offset=address_offset)
        warm.run()
        groups = {"web": [p for pid in stack.pids("web") for p in process_tree(pid)],
                  "worker": [p for pid in stack.pids("worker") for p in process_tree(pid)],
                  "nginx": [p for pid in stack.pids("nginx") for p in process_tree(pid)],
                  "PostgreSQL": database_backends(args.database_url),
                  "Redis": [args.redis_pid]}
        before = {name: cpu_seconds(pids) for name, pids in groups.items()}
        driver = Driver(stack.url, args.database_url, first=first + 2 * instances, logins=args.logins,
                        threads=args.concurrency_per_instance * instances, address_offset=address_offset + 1000)
        wall = driver.run()
        cpu = {name: cpu_seconds(pids) - before[name] for name, pids in groups.items()}
        log = stack.access_log()
        result = {"label": label, "instances": instances, "wall": wall, "results": driver.results,
                  "web_cpu": cpu["web"], "cpu": cpu, "log": log, "ports": stack.instance_ports}
        if instances > 1:
            result["throttle"] = throttle_once(stack, args)
        return result


def throttle_once(stack, args) -> dict:
    """Wrong PINs (unknown numbers) from one address until refused; which instances answered."""
    from chave import policy
    from chave.testing.httpcitizen import Browser, source_address

    limit = policy.throttle("pin_attempt_per_ip").limit
    address = source_address(60000)
    browser = Browser(stack.url, source=address)
    statuses = []
    browser.get("/login/")  # one form: each POST then goes to the instance with fewer requests in flight
    for i in range(limit + 2):
        r = browser.post("/login/", {"identifier": f"+35196{i:07d}", "pin": "1357"})
        statuses.append(r.status_code)
    browser.close()
    upstreams = {m.group(1) for m in re.finditer(rf"^{re.escape(address)} .*\"POST /login/ .*upstream=(\S+)",
                                                  stack.access_log(), re.M)}
    return {"limit": limit, "statuses": statuses, "upstreams": upstreams}


def check_codes(database_url: str, results) -> tuple[int, int]:
    """(logins with no code message, logins with more than one) among the completed ones."""
    import psycopg

    from chave.testing import population

    with psycopg.connect(database_url) as connection:
        counts = dict(connection.execute(
            "SELECT \"to\", count(*) FROM delivery_devoutboxmessage GROUP BY \"to\"").fetchall())
    numbers = [population.phone(n) for n, _ in results]
    return sum(1 for p in numbers if counts.get(p, 0) == 0), sum(1 for p in numbers if counts.get(p, 0) > 1)


def report(result: dict) -> float:
    ok = [r for _, r in result["results"] if r.ok]
    failed = [r for _, r in result["results"] if not r.ok]
    rate = len(ok) / result["wall"]
    times = sorted(r.seconds for r in ok)
    p95 = times[int(0.95 * (len(times) - 1))] if times else 0
    waits = sorted(r.code_wait for r in ok)
    print(f"{result['label']}: {len(ok)} logins in {result['wall']:.1f} s = {rate:.2f}/s "
          f"(p50 {statistics.median(times) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms; code on the phone after "
          f"p50 {statistics.median(waits) * 1000:.0f} ms; web CPU {result['web_cpu'] / max(1, len(ok)) * 1000:.0f} ms "
          f"per login){f'; {len(failed)} FAILED: ' + str(collections.Counter(r.step for r in failed)) if failed else ''}")
    per_upstream = collections.Counter(re.findall(r"upstream=(\S+)", result["log"]))
    print(f"  requests per instance: {', '.join(f'{k}: {v}' for k, v in sorted(per_upstream.items()))}")
    return rate


PEAK = 150  # complete logins per second at the national peak (issue 17, goal 7)
PEAK_CORES = 8


def national_peak(result: dict, hash_cpu: float, owasp_cpu: float, argon2: dict) -> None:
    """Goal 7's arithmetic from the CPU each component spent per complete login in this run."""
    ok = sum(1 for _, r in result["results"] if r.ok) or 1
    per_login = {name: seconds / ok for name, seconds in result["cpu"].items()}
    total = sum(per_login.values())
    print("CPU per complete login (2 instances): " + ", ".join(f"{n} {v * 1000:.0f} ms" for n, v in per_login.items())
          + f"; all {total * 1000:.0f} ms, of which the PIN check {hash_cpu * 1000:.0f} ms")
    cores_now = PEAK * total
    other = total - hash_cpu
    cores_owasp = PEAK * (other + owasp_cpu)
    print(f"national peak, {PEAK} logins/s: {PEAK} x {total * 1000:.0f} ms = {cores_now:.1f} cores with Argon2id "
          f"t={argon2['time_cost']} m={argon2['memory_cost'] // 1024} MiB; {PEAK} x ({other * 1000:.0f} + "
          f"{owasp_cpu * 1000:.0f}) ms = {cores_owasp:.1f} cores with OWASP's minimum "
          f"(goal <= {PEAK_CORES}: {'met' if cores_owasp <= PEAK_CORES else 'NOT met'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=120, help="timed logins in each configuration")
    parser.add_argument("--concurrency-per-instance", type=int, default=4)
    parser.add_argument("--database-url", default=os.environ.get(
        "CHAVE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/chave_bench_scale"),
        help="a PostgreSQL database the benchmark may empty")
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        print("two cores are needed")
        return 2

    data_dir = Path(tempfile.mkdtemp(prefix="chave-bench-scale-"))
    from chave.testing.faults import PrivateRedis

    redis = PrivateRedis()
    redis.start()
    try:
        os.environ["CHAVE_REDIS_URL"] = redis.url
        setup_django(args.database_url, data_dir)
        from django.conf import settings

        from chave.identity import pins
        from chave.testing import population
        from chave.testing.stack import stack_env

        fresh_database(args.database_url)
        citizens = 2 * (args.logins + 10)
        population.seed(args.database_url, citizens, pin_hash=pins.hash_pin(PIN))
        env = stack_env(args.database_url, redis.url, data_dir)
        args.redis_pid = redis.process.pid
        hash_rate, hash_cpu = _bare_hashes(6.0, "0")
        _, owasp_cpu = _bare_hashes(4.0, "0", **OWASP_ARGON2)
        p = settings.CHAVE_ARGON2
        print(f"Argon2id t={p['time_cost']} m={p['memory_cost']} KiB p={p['parallelism']}; bare PIN verifications "
              f"on one core: {hash_rate:.2f}/s ({hash_cpu * 1000:.0f} ms of CPU each; OWASP's minimum, 19 MiB t=2: "
              f"{owasp_cpu * 1000:.0f} ms); {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        one = phase("1 instance on 1 core ", 1, args, env, first=0, address_offset=0)
        two = phase("2 instances on 2 cores", 2, args, env, first=args.logins + 10, address_offset=20000)
        rate1, rate2 = report(one), report(two)
        print(f"  one instance reaches {rate1 / hash_rate:.2f}x the bare PIN-hash rate of its core")
        ratio = rate2 / rate1 if rate1 else 0.0
        print(f"ratio 2 instances / 1 instance: {ratio:.2f} (goal >= 1.8: {'met' if ratio >= 1.8 else 'NOT met'})")
        # On a machine shared with other work the instances get only part of their cores; CPU per
        # login says whether the work itself scales (the ratio they would reach with the cores to themselves).
        shares = [r["web_cpu"] / (r["wall"] * r["instances"]) for r in (one, two)]
        cpu1, cpu2 = (r["web_cpu"] / max(1, sum(1 for _, x in r["results"] if x.ok)) for r in (one, two))
        print(f"  the instances had {shares[0]:.0%} (1) and {shares[1]:.0%} (2) of their cores; web CPU per login "
              f"{cpu1 * 1000:.0f} ms (1) and {cpu2 * 1000:.0f} ms (2): 2 x {cpu1 * 1000:.0f} / {cpu2 * 1000:.0f} = "
              f"{2 * cpu1 / cpu2:.2f} with whole cores")
        lost, doubled = check_codes(args.database_url, one["results"] + two["results"])
        print(f"codes: {lost} logins without a code, {doubled} with more than one (two workers on one queue)")
        by_address = collections.defaultdict(set)
        for address, upstream in re.findall(r"^(\S+) .*upstream=(\S+)", two["log"], re.M):
            by_address[address].add(upstream)
        shared = sum(1 for ups in by_address.values() if len(ups) > 1)
        print(f"sessions: {shared} of {len(by_address)} citizens' logins were answered by both instances")
        t = two["throttle"]
        allowed = next((i for i, s in enumerate(t["statuses"]) if s == 429), len(t["statuses"]))
        once = allowed == t["limit"] and all(s == 429 for s in t["statuses"][allowed:])
        print(f"throttle: wrong PINs from one address over {len(t['upstreams'])} instances refused (429) from "
              f"attempt {allowed + 1} on; pin_attempt_per_ip allows {t['limit']}: "
              f"{'counted once' if once else 'NOT counted once'}")
        national_peak(two, hash_cpu, owasp_cpu, p)
        print(f"load average after: {os.getloadavg()[0]:.1f} (other work on the machine shares these cores)")
        return 0
    finally:
        redis.close()


if __name__ == "__main__":
    sys.exit(main())
