"""Components the fault tests may break: a private PostgreSQL cluster, a private Redis server, and
Chave's own processes (web service, worker) pointed at them.

Never the shared PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379): other people's tests use
them. Each instance here lives in a temporary directory, listens on a free port of 127.0.0.1 and
dies with the test run (``PR_SET_PDEATHSIG``). Debian's binaries: ``/usr/lib/postgresql/15/bin``
(run as the ``postgres`` user when the tests run as root, since ``initdb`` refuses root) and
``redis-server``. Every wait is bounded and on a condition.
"""

from __future__ import annotations

import contextlib
import http.client
import http.cookiejar
import uuid
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
BOUND = 60.0  # seconds: the longest any wait on a component may take
CHAVE = [sys.executable, "-m", "chave.cli"]
PROJECT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(condition, *, timeout: float = BOUND, what: str = "condition"):
    """Poll ``condition`` until it returns something truthy, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def die_with_pytest() -> None:
    """In a child before exec: Linux sends it SIGTERM if the test run dies without cleaning up."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class PrivatePostgres:
    """A PostgreSQL cluster of its own: ``start``, ``stop``, ``restart`` (fast shutdown: sessions are
    terminated and their transactions rolled back, as in a failover), databases from a template."""

    def __init__(self):
        missing = [b for b in ("initdb", "pg_ctl", "postgres") if not (PG_BIN / b).exists()]
        if missing:
            pytest.fail(f"PostgreSQL 15's binaries are missing under {PG_BIN}: apt-get install postgresql-15")
        self.dir = Path(tempfile.mkdtemp(prefix="chave-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        os.chmod(self.dir, 0o755)
        subprocess.run([*_as_postgres(), str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                        "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"],
                       check=True, capture_output=True, timeout=BOUND)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 60\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        self.process = subprocess.Popen([*_as_postgres(), str(PG_BIN / "postgres"), "-D", str(self.data)],
                                        stdout=open(self.dir / "postgres.log", "ab"), stderr=subprocess.STDOUT,
                                        preexec_fn=die_with_pytest)
        wait_for(self.ready, what=f"the private PostgreSQL to accept connections (see {self.dir}/postgres.log)")

    def ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2) as connection:
                connection.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster): every session is ended, transactions rolled back."""
        if self.process is not None and self.process.poll() is None:
            # To the postmaster itself (runuser, its parent when we are root, would not pass SIGINT on).
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGINT)
            self.process.wait(timeout=BOUND)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, params=(), *, database: str = "postgres"):
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else None

    def create_database(self, name: str, *, template: str | None = None) -> str:
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A redis-server of its own, without persistence: ``start``, ``stop``."""

    def __init__(self):
        if not shutil.which("redis-server"):
            pytest.fail("redis-server is missing: apt-get install redis-server")
        self.dir = Path(tempfile.mkdtemp(prefix="chave-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)],
            stdout=open(self.dir / "redis.log", "ab"), stderr=subprocess.STDOUT, preexec_fn=die_with_pytest)

        def answers():
            import redis

            try:
                return redis.Redis(port=self.port, socket_connect_timeout=1).ping()
            except redis.RedisError:
                return False

        wait_for(answers, what="the private Redis to answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=BOUND)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def chave_env(database_url: str, data_dir: Path, **extra) -> dict:
    """Environment for a ``chave`` process on the private database (cheap Argon2, as in tests), in
    ``data_dir``: none of the test run's own settings, nor the SoftHSM2 configuration its HSM tests
    point the test process at, so the process makes and finds its tokens as the service does."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CHAVE_") and k not in ("DJANGO_SETTINGS_MODULE", "SOFTHSM2_CONF")}
    env.update(CHAVE_ENV="test", CHAVE_DATABASE_URL=database_url, CHAVE_DATA_DIR=str(data_dir),
               CHAVE_ARGON2_MEMORY_KIB="8192", CHAVE_ARGON2_TIME_COST="2", PYTHONUNBUFFERED="1",
               DJANGO_SETTINGS_MODULE="chave.settings", **extra)
    return env


def run_chave(env: dict, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([*CHAVE, *args], env=env, cwd=PROJECT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"chave {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


class ChaveProcess:
    """A ``chave`` command running in the background (``serve``, ``worker``), its output in a file."""

    def __init__(self, env: dict, *args, log: Path):
        self.log = log
        self.process = subprocess.Popen([*CHAVE, *args], env=env, cwd=PROJECT, stdout=open(log, "ab"),
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=die_with_pytest)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def running(self) -> bool:
        """True while the process runs; an AssertionError with its output once it stopped (a wait
        on what it should do fails at once, with why, rather than at the wait's bound)."""
        if self.process.poll() is not None:
            raise AssertionError(f"the process stopped (exit code {self.process.returncode}):\n{self.output()}")
        return True

    def url(self) -> str:
        def found():
            self.running()
            match = re.search(r"(http://127\.0\.0\.1:\d+)/", self.output())
            return match and match.group(1)

        return wait_for(found, what="the service's URL")

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=BOUND)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


class Visitor:
    """A browser's worth of HTTP: cookies, the CSRF token of the last form, redirects followed."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.page = ""

    def request(self, path: str, fields: dict | None = None, *, timeout: float = 30,
                headers: dict | None = None) -> tuple[int, dict, str]:
        """(status, headers, body) of the last answer (redirects followed); HTTP errors are answers too.
        A connection the server closed without answering is status 0."""
        data = None
        if fields is not None:
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', self.page)
            data = urllib.parse.urlencode({**({"csrfmiddlewaretoken": token.group(1)} if token else {}),
                                           **fields}).encode()
        request = urllib.request.Request(self.base + path, data=data, headers={"Accept": "text/html", **(headers or {})})
        try:
            with self.opener.open(request, timeout=timeout) as response:
                status, answer, body = response.status, dict(response.headers), response.read().decode()
                self.path = urllib.parse.urlsplit(response.url).path
        except urllib.error.HTTPError as error:
            status, answer, body = error.code, dict(error.headers), error.read().decode(errors="replace")
        except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException):
            status, answer, body = 0, {}, ""
        if status == 200:
            self.page = body
        return status, answer, body


@contextlib.contextmanager
def private_postgres():
    cluster = PrivatePostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


# --- Fixtures (registered for every app's tests in chave/conftest.py) ----------------------------


@pytest.fixture(scope="session")
def private_pg():
    """A PostgreSQL cluster of the session's own, which tests may stop and restart."""
    with private_postgres() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def chave_template(private_pg, tmp_path_factory) -> str:
    """A database on ``private_pg`` with Chave's tables, migrated once per session."""
    url = private_pg.create_database("chave_template")
    run_chave(chave_env(url, tmp_path_factory.mktemp("template")), "migrate", "--noinput", "-v0")
    return "chave_template"


@pytest.fixture
def chave_database(private_pg, chave_template):
    """A fresh copy of the migrated template on ``private_pg``; its URL."""
    name = f"chave_{uuid.uuid4().hex[:12]}"
    url = private_pg.create_database(name, template=chave_template)
    yield url
    if private_pg.ready():
        private_pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
