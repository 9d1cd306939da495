"""Complete logins over HTTP against ``chave serve``, at several concurrencies (bench/login.py --http).

The service is a real ``chave serve --processes N --with-worker`` (gunicorn, the delivery worker
woken by its doorbell) on a fresh SQLite database or a fresh PostgreSQL database
(``--postgres URL``: a server where the bench may create and drop ``chave_bench_<pid>``). The load
driver is this process: C threads, each a browser of its own (cookies, CSRF token, its own client
address in ``X-Forwarded-For``, which the service trusts as from one proxy), each doing complete
logins one after another: GET /login/ → POST number + PIN → the code reaches the development
sink through the worker → the code is read from the sink, as a phone shows it → POST the code →
the signed-in page. Each citizen logs in at most a few times (the send caps are per key).

Printed per concurrency: logins/s, p50/p95 of a login, the ratio to the bare PIN-hash rate of all
cores (Argon2id alone, with the service's parameters, in as many processes as there are cores),
how long codes took from being asked for to reaching the sink (the gateway adapter: p50/p95), and
the peak memory of the service's processes: all of them together, shared pages counted once
(proportional set sizes), and their resident sizes (largest one, and simply added).
"""

from __future__ import annotations

import concurrent.futures
import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAVE = [sys.executable, "-m", "chave.cli"]
PIN = "4719"


def _bare_hash(params: tuple[int, int, int], seconds: float) -> int:
    from argon2 import PasswordHasher, Type

    hasher = PasswordHasher(time_cost=params[0], memory_cost=params[1], parallelism=params[2], type=Type.ID)
    stored = hasher.hash(b"x" * 32)
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        hasher.verify(stored, b"x" * 32)
        done += 1
    return done


def bare_hash_rate(params: tuple[int, int, int], processes: int, seconds: float = 6.0) -> float:
    """Argon2id verifications per second with ``processes`` processes hashing at once."""
    with concurrent.futures.ProcessPoolExecutor(processes) as pool:
        start = time.perf_counter()
        counts = list(pool.map(_bare_hash, [params] * processes, [seconds] * processes))
        return sum(counts) / (time.perf_counter() - start)


class Browser:
    def __init__(self, base: str, ip: str):
        self.base, self.ip = base, ip
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def request(self, path: str, fields: dict | None = None, page: str = "") -> tuple[str, str]:
        data = None
        if fields is not None:
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
            data = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), **fields}).encode()
        req = urllib.request.Request(self.base + path, data=data, headers={
            "X-Forwarded-For": self.ip, "Accept-Language": "en", "Referer": self.base + path})
        with self.opener.open(req, timeout=120) as response:
            return urllib.parse.urlsplit(response.url).path, response.read().decode()


def run(args) -> int:
    cores = len(os.sched_getaffinity(0))
    processes = args.processes or cores
    data_dir = Path(tempfile.mkdtemp(prefix="chave-bench-http-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAVE_")}
    env.update(CHAVE_ENV="dev", CHAVE_DEBUG="0", CHAVE_DATA_DIR=str(data_dir), CHAVE_TRUSTED_PROXIES="1",
               DJANGO_SETTINGS_MODULE="chave.settings", PYTHONUNBUFFERED="1")
    database = "SQLite"
    dropper = None
    if args.postgres:
        import psycopg

        name = f"chave_bench_{os.getpid()}"
        server = args.postgres.rsplit("/", 1)[0]
        with psycopg.connect(server + "/postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        env["CHAVE_DATABASE_URL"] = f"{server}/{name}"
        database = "PostgreSQL"

        def dropper():
            with psycopg.connect(server + "/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    try:
        call_command("migrate", verbosity=0)
        phones = _citizens(args.citizens)
        p = settings.CHAVE_ARGON2
        params = (p["time_cost"], p["memory_cost"], p["parallelism"])
        print(f"HTTP logins against `chave serve --processes {processes} --with-worker` ({database}, "
              f"{cores} cores; Argon2id t={params[0]}, {params[1]} KiB, p={params[2]})")
        bare = bare_hash_rate(params, cores)
        print(f"bare PIN verifications, {cores} processes: {bare:.1f}/s ({bare / cores:.1f}/s per core)")
        port = _free_port()
        log = data_dir / "serve.log"
        serve = subprocess.Popen([*CHAVE, "serve", "--port", str(port), "--processes", str(processes),
                                  "--with-worker"], env=env, cwd=ROOT, stdout=log.open("wb"),
                                 stderr=subprocess.STDOUT, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_until_up(base, serve, log)
            results = []
            citizens = iter(phones)
            # Untimed: each web process's first requests load templates, translations and the
            # URL resolver's reverse maps; a server does that once and then serves for hours.
            _warm_up(base, [next(citizens) for _ in range(WARM_UP_PER_PROCESS * processes)], processes)
            for concurrency in args.concurrency:
                results.append(_round(base, concurrency, args.logins_per_round, citizens, serve.pid, bare))
            best = max(results, key=lambda r: r["rate"])
            print(f"best: concurrency {best['concurrency']}: {best['rate']:.1f} logins/s = "
                  f"{best['rate'] / cores:.1f} per core, ratio {best['rate'] / bare:.2f} (goal >= 0.8: "
                  f"{'met' if best['rate'] / bare >= 0.8 else 'NOT met'}); p95 {best['p95'] * 1000:.0f} ms = "
                  f"{best['p95'] / best['p50']:.1f}x p50 (goal <= 2x)")
            codes = [c for r in results for c in r["code_delays"]]
            if codes:
                print(f"code to the gateway adapter: p50 {_pct(codes, 50) * 1000:.0f} ms, p95 "
                      f"{_pct(codes, 95) * 1000:.0f} ms over {len(codes)} codes (goal p95 <= 100 ms)")
            instance = max(r["pss_sum"] for r in results)
            print(f"memory: the instance (every process of chave serve, shared pages counted once) "
                  f"{instance / 2**20:.0f} MB at most (goal <= 300 MB per instance: "
                  f"{'met' if instance <= 300 * 2**20 else 'NOT met'}); resident sizes added "
                  f"{max(r['rss_sum'] for r in results) / 2**20:.0f} MB, largest process "
                  f"{max(r['rss_max'] for r in results) / 2**20:.0f} MB")
        finally:
            os.killpg(serve.pid, signal.SIGTERM)
            try:
                serve.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
    finally:
        from django.db import connections

        connections.close_all()
        if dropper:
            dropper()
    return 0


WARM_UP_PER_PROCESS = 4


def _warm_up(base: str, phones: list[str], processes: int) -> None:
    """Complete logins, untimed, as many at once as there are web processes."""
    from django.db import connections

    def one(n: int, phone: str) -> None:
        try:
            _login(base, phone, f"10.250.{n // 250}.{n % 250 + 1}")
        finally:
            connections.close_all()

    with concurrent.futures.ThreadPoolExecutor(processes) as pool:
        list(pool.map(one, range(len(phones)), phones))


def _citizens(count: int, *, with_email: bool = False, first_nic: int = 40000000, name: str = "Load") -> list[str]:
    """``count`` citizens with a key and its PIN, each with a mobile number (returned) and, with
    ``with_email``, an e-mail address too."""
    import datetime as dt

    from chave import clock
    from chave.delivery.models import OutboundMessage
    from chave.identity import services
    from chave.identity.models import ContactKind
    from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords

    phones = []
    for i in range(count):
        doc = DocumentRef("cc", "PT", f"{first_nic + i:08d}")
        LocalRecords().store(IdentityRecord(doc=doc, full_name=f"{name} Citizen {i}", given_name=name,
                                            family_name="Citizen", birth_date=dt.date(1980, 1, 1),
                                            document_expiry=clock.today() + dt.timedelta(days=3650)))
        phone = f"+3519200{i:05d}"
        contacts = [services.ContactInput(ContactKind.MOBILE, phone)]
        if with_email:
            contacts.append(services.ContactInput(ContactKind.EMAIL, f"citizen{i}@example.pt"))
        services.register_citizen(doc, contacts, pin=PIN, contacts_verified_by="bench")
        phones.append(phone)
    OutboundMessage.objects.all().delete()  # activation notices are not part of a login
    return phones


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(base: str, serve: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            raise SystemExit(f"chave serve stopped:\n{log.read_text()}")
        try:
            urllib.request.urlopen(base + "/health/live", timeout=5).read()
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"chave serve did not answer:\n{log.read_text()}")


def _pct(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(percent / 100 * (len(ordered) - 1)))]


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _kib(path: str, field: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU time each process has used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (the 14th and 15th fields)
    return used


def _role(pid: int, service: int) -> str:
    """What a process of ``chave serve`` (pid ``service``) is."""
    try:
        line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        line = ""
    return ("web" if "gunicorn" in line and pid != service and _parent(pid) != service else
            "gunicorn master" if "gunicorn" in line else "delivery worker" if " worker" in line
            else "chave serve" if pid == service else "other")


def _rss(pid: int) -> int:
    return _kib(f"/proc/{pid}/status", "VmRSS:")


def _pss(pid: int) -> int:
    """The process's proportional share: pages shared with others (the same libraries, the
    processes gunicorn forks) counted once across them, which resident sizes add up twice."""
    return _kib(f"/proc/{pid}/smaps_rollup", "Pss:")


class _Memory(threading.Thread):
    """Samples the resident memory of every process of the service while a round runs."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.stop, self.largest, self.total, self.shared = pid, threading.Event(), 0, 0, 0
        self.peaks: dict[int, int] = {}
        self.share_peaks: dict[int, int] = {}

    def run(self):
        while not self.stop.wait(0.2):
            processes = _tree(self.pid)
            sizes = {p: _rss(p) for p in processes}
            shares = {p: _pss(p) for p in processes}
            for p, size in sizes.items():
                self.peaks[p] = max(self.peaks.get(p, 0), size)
                self.share_peaks[p] = max(self.share_peaks.get(p, 0), shares[p])
            self.largest, self.total = max(self.largest, max(sizes.values())), max(self.total, sum(sizes.values()))
            self.shared = max(self.shared, sum(shares.values()))

    def breakdown(self) -> str:
        """Each process's peak, named by what it is."""
        names = []
        for p, size in sorted(self.peaks.items()):
            name = _role(p, self.pid)
            names.append(f"{name} {size / 2**20:.0f} ({self.share_peaks.get(p, 0) / 2**20:.0f})")
        return ", ".join(names)


def _login(base: str, phone: str, ip: str) -> tuple[float, float]:
    """One complete login; returns its duration and how long its code took to reach the sink."""
    from chave.delivery.models import DevOutboxMessage, OutboundMessage

    browser = Browser(base, ip)
    start = time.perf_counter()
    path, page = browser.request("/login/")
    path, page = browser.request("/login/", {"identifier": phone, "pin": PIN}, page)
    assert path == "/login/code/", (path, page[:500])
    deadline = time.monotonic() + 60
    while True:
        message = OutboundMessage.objects.filter(destination=phone, kind="code").order_by("-id").first()
        if message is not None and message.sent_at is not None:
            break
        assert time.monotonic() < deadline, "no code within 60 s"
        time.sleep(0.02)  # the phone's side; the code's own delay is measured by the service's clock
    body = DevOutboxMessage.objects.filter(to=phone).latest("sent_at", "id").body
    code = re.search(r"#(\d{6})\s*$", body).group(1)
    path, page = browser.request("/login/code/", {"code": code}, page)
    assert path == "/login/done/", (path, page[:500])
    return time.perf_counter() - start, (message.sent_at - message.created_at).total_seconds()


def _round(base: str, concurrency: int, logins: int, citizens, pid: int, bare: float) -> dict:
    from django.db import connections

    memory = _Memory(pid)
    memory.start()
    lock = threading.Lock()
    durations, delays = [], []
    jobs = [(next(citizens), f"10.{concurrency}.{n // 250}.{n % 250 + 1}") for n in range(logins)]

    def user(worker: int):
        try:
            while True:
                with lock:
                    if not jobs:
                        return
                    phone, ip = jobs.pop()
                took, delay = _login(base, phone, ip)
                with lock:
                    durations.append(took)
                    delays.append(delay)
        finally:
            connections.close_all()

    service = _tree(pid)
    service_cpu, driver_cpu = _cpu_seconds(service), time.process_time()
    start = time.perf_counter()
    threads = [threading.Thread(target=user, args=(n,)) for n in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    after = _cpu_seconds(_tree(pid))  # a web process forked after the round began counts from 0
    roles: dict[str, float] = {}
    for p, seconds in after.items():
        roles[_role(p, pid)] = roles.get(_role(p, pid), 0.0) + seconds - service_cpu.get(p, 0.0)
    service_cpu, driver_cpu = sum(roles.values()), time.process_time() - driver_cpu
    memory.stop.set()
    memory.join()
    rate = len(durations) / wall
    result = {"concurrency": concurrency, "rate": rate, "p50": _pct(durations, 50), "p95": _pct(durations, 95),
              "code_delays": delays, "rss_max": memory.largest, "rss_sum": memory.total,
              "pss_sum": memory.shared}
    print(f"concurrency {concurrency:2}: {len(durations)} logins in {wall:5.1f} s = {rate:5.1f}/s, ratio "
          f"{rate / bare:.2f}; login p50 {result['p50'] * 1000:4.0f} ms p95 {result['p95'] * 1000:4.0f} ms; code "
          f"p95 {_pct(delays, 95) * 1000:3.0f} ms; memory {memory.shared / 2**20:.0f} MB "
          f"(resident sizes added {memory.total / 2**20:.0f} MB, largest process {memory.largest / 2**20:.0f} MB)")
    each = ", ".join(f"{role} {seconds * 1000 / len(durations):.1f}" for role, seconds in sorted(roles.items()))
    print(f"    CPU per login: the service {service_cpu * 1000 / len(durations):.0f} ms ({each}), this load "
          f"driver {driver_cpu * 1000 / len(durations):.0f} ms (on the same cores)")
    print(f"    peak MB per process, resident (proportional): {memory.breakdown()}")
    return result
