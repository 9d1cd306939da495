#!/usr/bin/env python3
"""What serving over HTTP adds to a login, and what its pages cost, in one run.

    .venv/bin/python bench/http_cost.py [--logins N] [--with-email] [--database-url URL] [--redis-url URL]

The deployed storage (PostgreSQL and Redis: ``chave/testing/stack.py``'s environment; the database
is emptied and migrated, default ``chave_bench_http`` on 127.0.0.1:5432, Redis database 8 emptied).
One web process, as a deployed unit runs it (``waitress-serve chave.wsgi:application``, eight
threads), pinned to core 0; this process, the browser, on core 1. Citizens are registered here.

Printed, each figure the CPU the web process spends (read from its threads' ``schedstat``, in
nanoseconds) or, in process, the CPU of this thread:

- a bare request (``/health/live``: the middleware, no session, no template), over HTTP and in
  process (Django's handler called directly, ``bench/client.py``);
- a complete SMS login in three steps, as a browser loads them (the login page; identifier + PIN
  and the code page it leads to; the code and the signed-in page), the logins over HTTP and in
  process alternating so that both see the same machine. With ``--with-email`` each citizen also
  has an e-mail address, as ``bench/scale.py``'s do, so the PIN leads to the page that asks where
  to send the code, and SMS is chosen there: a step more;
- the bare PIN check, for scale.

The code is handed to the development sink by this process (the delivery worker's send step), so
the worker's CPU is in neither column.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.http_login import PIN  # noqa: E402 - the citizens' PIN (bench.http_login._citizens)

PROJECT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=40, help="logins each way")
    parser.add_argument("--with-email", action="store_true", help="citizens with an e-mail address too (the "
                        "channel is chosen at each login)")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/chave_bench_http")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        print("needs two cores: the web process on one, the browser on the other", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {1})

    from bench.scale import fresh_database
    from chave.testing.stack import stack_env

    # No proxy in front: the client's own (loopback) address is the one throttles count.
    env = stack_env(args.database_url, args.redis_url, Path(tempfile.mkdtemp(prefix="chave-bench-http-")),
                    CHAVE_TRUSTED_PROXIES="0")
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "chave.settings"
    import django

    django.setup()
    import redis

    fresh_database(args.database_url)
    redis.Redis.from_url(args.redis_url).flushdb()
    from bench.http_login import _citizens

    phones = _citizens(2 * args.logins + 2, with_email=args.with_email, first_nic=30000000, name="Bench")

    from django.db import connections

    from bench.http_login import _free_port, _wait_until_up

    connections.close_all()
    base = f"http://127.0.0.1:{_free_port()}"
    log = Path(env["CHAVE_DATA_DIR"]) / "waitress.log"
    with log.open("ab") as output:
        server = subprocess.Popen(
            ["taskset", "-c", "0", str(Path(sys.executable).parent / "waitress-serve"),
             f"--listen={base.removeprefix('http://')}", "--threads=8", "chave.wsgi:application"],
            env={**os.environ, "PYTHONPATH": str(PROJECT)}, cwd=PROJECT, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        _wait_until_up(base, server, log)
        return measure(server, base, phones, args.logins, with_email=args.with_email)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def server_cpu_ms(server: subprocess.Popen) -> float:
    """CPU the web process's threads have run for, in ms (schedstat: nanoseconds on a CPU)."""
    total = 0
    for path in glob.glob(f"/proc/{server.pid}/task/*/schedstat"):
        try:
            total += int(Path(path).read_text().split()[0])
        except (OSError, ValueError, IndexError):  # a thread that ended meanwhile
            pass
    return total / 1e6


def deliver(phone: str) -> str:
    """The worker's send step for the citizen's queued code, then the code as the phone shows it."""
    from chave.delivery.models import DevOutboxMessage, MessageStatus, OutboundMessage
    from chave.delivery.services import send_message

    for message in OutboundMessage.objects.filter(status=MessageStatus.QUEUED, destination=phone):
        send_message(str(message.pk))
    return re.search(r"#(\d{6})\s*$", DevOutboxMessage.objects.filter(to=phone).latest("sent_at", "id").body).group(1)


def measure(server: subprocess.Popen, base: str, phones: list[str], logins: int, *, with_email: bool) -> int:
    from bench.client import BenchClient
    from chave.identity import pins
    from chave.ops.loaded import settle
    from chave.testing.httpcitizen import Browser, source_address

    steps = (("login page", "PIN + channel page", "channel + code page", "code + signed-in page") if with_email
             else ("login page", "PIN + code page", "code + signed-in page"))

    def over_http(i: int, phone: str, spent: collections.Counter) -> None:
        browser = Browser(base, source=source_address(i))

        def step(name, load):
            before = server_cpu_ms(server)
            response = load()
            spent[name] += server_cpu_ms(server) - before
            return response

        step(steps[0], lambda: browser.get("/login/"))
        r = step(steps[1], lambda: browser.post("/login/", {"identifier": phone, "pin": PIN}))
        if with_email:
            assert r.status_code == 200 and r.url.endswith("/login/channel/"), (r.status_code, r.url)
            r = step(steps[2], lambda: browser.post("/login/channel/", {"channel": "sms"}))
        assert r.status_code == 200 and r.url.endswith("/login/code/"), (r.status_code, r.url)
        code = deliver(phone)
        r = step(steps[-1], lambda: browser.post("/login/code/", {"code": code}))
        assert r.status_code == 200 and r.url.endswith("/login/done/"), (r.status_code, r.url)
        browser.close()

    def in_process(i: int, phone: str, spent: collections.Counter) -> None:
        client = BenchClient(REMOTE_ADDR=f"10.9.{i // 250}.{i % 250 + 1}")

        def step(name, load):
            before = time.thread_time()
            response = load()
            spent[name] += (time.thread_time() - before) * 1000
            return response

        def follow(response):
            assert response.status_code == 302, response.status_code
            return client.get(response["Location"])

        step(steps[0], lambda: client.get("/login/"))
        r = step(steps[1], lambda: follow(client.post("/login/", {"identifier": phone, "pin": PIN})))
        if with_email:
            assert r.status_code == 200 and r.wsgi_request.path == "/login/channel/", r.wsgi_request.path
            r = step(steps[2], lambda: follow(client.post("/login/channel/", {"channel": "sms"})))
        assert r.status_code == 200 and r.wsgi_request.path == "/login/code/", r.wsgi_request.path
        code = deliver(phone)
        r = step(steps[-1], lambda: follow(client.post("/login/code/", {"code": code})))
        assert r.status_code == 200 and r.wsgi_request.path == "/login/done/", r.wsgi_request.path

    # Warm-up, untimed: one login each way, then this process settled as a serving one is.
    over_http(0, phones[0], collections.Counter())
    in_process(1, phones[1], collections.Counter())
    settle()

    bare = BenchClient()
    import requests

    session = requests.Session()
    bare_http = bare_local = 0.0
    for _ in range(20):
        session.get(base + "/health/live")
        bare.get("/health/live")
    for _ in range(200):
        before = server_cpu_ms(server)
        session.get(base + "/health/live")
        bare_http += server_cpu_ms(server) - before
        before = time.thread_time()
        bare.get("/health/live")
        bare_local += (time.thread_time() - before) * 1000
    session.close()

    http, local = collections.Counter(), collections.Counter()
    for n in range(logins):
        over_http(2 + 2 * n, phones[2 + 2 * n], http)
        in_process(3 + 2 * n, phones[3 + 2 * n], local)

    stored = pins.hash_pin(PIN)
    pins.verify(stored, PIN)
    before = time.thread_time()
    for _ in range(20):
        pins.verify(stored, PIN)
    pin_ms = (time.thread_time() - before) / 20 * 1000

    print(f"web process CPU, ms: over HTTP (waitress, one core) and in process; {logins} SMS logins each way"
          f"{' (a mobile number and an e-mail address: the channel chosen)' if with_email else ''}, "
          f"PostgreSQL and Redis; load average {os.getloadavg()[0]:.1f}")
    print(f"  {'a bare request (/health/live)':32s} {bare_http / 200:6.2f}  {bare_local / 200:6.2f}")
    for name in steps:
        print(f"  {name:32s} {http[name] / logins:6.2f}  {local[name] / logins:6.2f}")
    all_http, all_local = sum(http.values()) / logins, sum(local.values()) / logins
    print(f"  {'a complete login':32s} {all_http:6.2f}  {all_local:6.2f}  (over HTTP {all_http / all_local:.2f}x)")
    print(f"  {'of which the PIN check':32s} {pin_ms:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
