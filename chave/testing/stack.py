"""The scale-out recipe of ``deploy/``, started on this machine: N web instances and N delivery
workers from the systemd unit files (each pinned to its core as ``CPUAffinity=`` says, with
``taskset``), behind Debian's nginx with the site file, sharing one PostgreSQL and one Redis.

    .venv/bin/python -m chave.testing.stack --instances 2 --database-url postgresql://…/wt_scale

What is used as written: each unit's ``Environment=``, ``CPUAffinity=`` and ``ExecStart=`` (``%i``
the instance, ``%H`` the host name, ``$$`` a dollar sign); every line of the nginx site except
what cannot be on a loopback benchmark: the upstream's ``server`` lines (this stack's instances), the
port-80 redirect, TLS (the site listens on one loopback port over plain HTTP) and the paths under
``/var/lib/chave`` and ``/var/log/nginx`` (this stack's folder). ``EnvironmentFile=`` is this
stack's environment (:func:`stack_env`): the operator's ``/etc/chave/chave.env``.

Used by ``bench/scale.py``, ``bench/load`` and the scale-out test (``chave/ops/tests/test_scale_out.py``).
Every process dies with the one that started it (``PR_SET_PDEATHSIG``) and every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent.parent
DEPLOY = PROJECT / "deploy"
WEB_UNIT = DEPLOY / "systemd" / "chave-web@.service"
WORKER_UNIT = DEPLOY / "systemd" / "chave-worker@.service"
NGINX_SITE = DEPLOY / "nginx" / "chave.conf"
OPT = "/opt/chave"  # where the unit files expect the installation
BOUND = 60.0  # seconds: the longest any wait here may take


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports (the units derive ports from a base)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = sock.getsockname()[1]
        if base + count > 65000:
            continue
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                sockets.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free run of loopback ports")


@dataclass
class Unit:
    """What a systemd unit file says about its service: environment, cores and command."""

    environment: dict[str, str]
    cpus: str | None
    command: list[str]


def read_unit(path: Path, instance: str) -> Unit:
    """The ``[Service]`` section of a unit file for ``instance``, specifiers expanded."""
    environment, cpus, command = {}, None, None
    section = ""
    text = re.sub(r"\\\n\s*", " ", path.read_text())  # systemd's line continuation
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section != "[Service]" or "=" not in line:
            continue
        name, value = line.split("=", 1)
        value = value.replace("%i", instance).replace("%H", socket.gethostname()).replace("%%", "%")
        if name == "Environment":
            for item in shlex.split(value):
                key, _, val = item.partition("=")
                environment[key] = val
        elif name == "CPUAffinity":
            cpus = value
        elif name == "ExecStart":
            command = [part.replace("$$", "$") for part in shlex.split(value)]
    if command is None:
        raise ValueError(f"{path} has no ExecStart")
    return Unit(environment, cpus, command)


def _local_command(command: list[str]) -> list[str]:
    """The unit's command with this checkout's virtual environment in place of /opt/chave/.venv."""
    bindir = str(Path(sys.executable).parent)
    return [part.replace(f"{OPT}/.venv/bin", bindir).replace(OPT, str(PROJECT)) for part in command]


def nginx_site(site: str, *, listen_port: int, upstreams: list[int], data_dir: Path, log_dir: Path) -> str:
    """The site file as this stack runs it (see the module's docstring for what changes)."""
    servers = "".join(f"    server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;\n" for port in upstreams)
    site = re.sub(r"(upstream chave \{\n(?:.*\n)*?)((?:    server .*\n)+)", lambda m: m.group(1) + servers, site,
                  count=1)
    # The port-80 server only redirects to TLS.
    site = re.sub(r"server \{\n(?:(?!\n\}).)*?return 301.*?\n\}\n", "", site, count=1, flags=re.S)
    site = re.sub(r"^\s*listen \[::\]:443.*\n", "", site, flags=re.M)
    site = re.sub(r"^(\s*)listen 443 .*$", rf"\1listen 127.0.0.1:{listen_port};", site, flags=re.M)
    site = re.sub(r"^\s*ssl_.*\n", "", site, flags=re.M)
    site = site.replace("/var/lib/chave", str(data_dir)).replace("/var/log/nginx", str(log_dir))
    return site


def nginx_main(site_path: Path, run_dir: Path) -> str:
    """A main nginx.conf like Debian's, for a server that is not the system's."""
    return f"""worker_processes 1;
pid {run_dir}/nginx.pid;
error_log {run_dir}/error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    client_body_temp_path {run_dir}/body;
    proxy_temp_path {run_dir}/proxy;
    fastcgi_temp_path {run_dir}/fastcgi;
    uwsgi_temp_path {run_dir}/uwsgi;
    scgi_temp_path {run_dir}/scgi;
    include {site_path};
}}
"""


def stack_env(database_url: str, redis_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """What stands in for /etc/chave/chave.env: the shared PostgreSQL and Redis, nginx as the one
    trusted proxy, and ``CHAVE_ENV=test`` (production refuses the development message sink, from
    which the benchmark reads the codes as a citizen reads their phone). Real Argon2 parameters
    unless ``extra`` says otherwise."""
    env = {"CHAVE_ENV": "test", "CHAVE_DATABASE_URL": database_url, "CHAVE_REDIS_URL": redis_url,
           "CHAVE_DATA_DIR": str(data_dir), "CHAVE_TRUSTED_PROXIES": "1", "CHAVE_SMS_PROVIDER": "sink",
           "CHAVE_EMAIL_PROVIDER": "sink"}
    env.update(extra)
    return env


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=BOUND)


@dataclass
class Stack:
    """``instances`` web instances and as many workers (``workers=0``: none), behind nginx.

    ``cpus[i]`` overrides the core of instance i (default: the unit's ``CPUAffinity=``, core i);
    ``env`` is the environment file (:func:`stack_env`)."""

    instances: int
    env: dict[str, str]
    workers: int | None = None
    cpus: list[str] | None = None
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chave-stack-")))
    processes: list[Process] = field(default_factory=list)
    port: int = 0
    instance_ports: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environment(self, unit: Unit) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CHAVE_") and k != "DJANGO_SETTINGS_MODULE"}
        return {**base, **unit.environment, **self.env}

    def _start(self, name: str, command: list[str], env: dict, cpus: str | None) -> Process:
        log = self.folder / f"{name}.log"
        if cpus is not None and shutil.which("taskset"):
            command = ["taskset", "-c", cpus, *command]
        popen = subprocess.Popen(command, env=env, cwd=PROJECT, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                                 start_new_session=True, preexec_fn=_die_with_parent)
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def _wait(self, process: Process, port: int) -> None:
        deadline = time.monotonic() + BOUND
        while not _port_open(port):
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} stopped:\n{process.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{process.name} did not listen on {port} in {BOUND} s:\n{process.output()[-3000:]}")
            time.sleep(0.05)

    def start(self) -> "Stack":
        if not shutil.which("nginx"):
            raise RuntimeError("nginx is missing: apt-get install nginx-light")
        self.folder.mkdir(parents=True, exist_ok=True)
        base = free_ports(self.instances)
        self.env = {**self.env, "CHAVE_PORT_BASE": str(base)}
        self.env.setdefault("CHAVE_DATA_DIR", str(self.folder / "data"))
        Path(self.env["CHAVE_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        self.port = free_ports(1)
        self.env.setdefault("CHAVE_PUBLIC_URL", self.url)
        self.env.setdefault("CHAVE_ALLOWED_HOSTS", "127.0.0.1,localhost")
        workers = self.instances if self.workers is None else self.workers
        try:
            # What an operator runs once at installation: nginx serves the static files.
            unit = read_unit(WEB_UNIT, "0")
            subprocess.run([sys.executable, "-m", "chave.cli", "collectstatic", "--noinput", "-v0"],
                           env=self._environment(unit), cwd=PROJECT, check=True, capture_output=True, timeout=BOUND)
            web = []
            for i in range(self.instances):
                unit = read_unit(WEB_UNIT, str(i))
                cpus = self.cpus[i] if self.cpus else unit.cpus
                web.append(self._start(f"web{i}", _local_command(unit.command), self._environment(unit), cpus))
            for i in range(workers):
                unit = read_unit(WORKER_UNIT, str(i))
                cpus = self.cpus[i % len(self.cpus)] if self.cpus else unit.cpus
                self._start(f"worker{i}", _local_command(unit.command), self._environment(unit), cpus)
            self.instance_ports = [base + i for i in range(self.instances)]
            for process, port in zip(web, self.instance_ports):
                self._wait(process, port)
            run = self.folder / "nginx"
            run.mkdir(exist_ok=True)
            site = run / "chave.conf"
            site.write_text(nginx_site(NGINX_SITE.read_text(), listen_port=self.port, upstreams=self.instance_ports,
                                       data_dir=Path(self.env["CHAVE_DATA_DIR"]), log_dir=run))
            main = run / "nginx.conf"
            main.write_text(nginx_main(site, run))
            nginx = self._start("nginx", ["nginx", "-e", str(run / "error.log"), "-c", str(main)], dict(os.environ), None)
            self._wait(nginx, self.port)
        except BaseException:
            self.stop()
            raise
        return self

    def access_log(self) -> str:
        path = self.folder / "nginx" / "chave.access.log"
        return path.read_text() if path.exists() else ""

    def pids(self, prefix: str) -> list[int]:
        return [p.popen.pid for p in self.processes if p.name.startswith(prefix) and p.popen.poll() is None]

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description="Start the deploy/ recipe on this machine until Ctrl-C.")
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--database-url", required=True, help="a migrated PostgreSQL database")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="chave-stack-data-"))
    stack = Stack(args.instances, stack_env(args.database_url, args.redis_url, data_dir))
    with stack:
        print(f"Chave behind nginx at {stack.url}/ ({args.instances} instances on ports "
              f"{', '.join(map(str, stack.instance_ports))}; logs in {stack.folder}). Ctrl-C stops.", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
