"""Real Redis and PostgreSQL for the test suite.

Uses the servers named by HUB_TEST_REDIS_URL / HUB_TEST_DATABASE_URL when set (each test session
then works in its own fresh database and its own Redis database number, so parallel sessions do
not collide); otherwise starts throwaway servers from the installed binaries, installing them
with apt-get when they are missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {timeout}s")


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(f"{' '.join(packages)} missing: install it, or set HUB_TEST_REDIS_URL/HUB_TEST_DATABASE_URL")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True, env=env, stdout=subprocess.DEVNULL)


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@contextmanager
def throwaway_redis() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        _apt_install("redis-server")
        binary = shutil.which("redis-server")
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="hub-redis-")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait(lambda: redis.Redis.from_url(url).ping(), "redis-server")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


class PgServer:
    """A throwaway PostgreSQL cluster that a test can stop and start again."""

    def __init__(self) -> None:
        if _pg_bin("initdb") is None:
            _apt_install("postgresql")
        self.initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        self.port = _free_port()
        self.workdir = tempfile.mkdtemp(prefix="hub-pg-")
        self.data = os.path.join(self.workdir, "data")
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(self.workdir, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(self.as_user + [str(self.pg_ctl), "-D", self.data, *args], check=True,
                       stdout=subprocess.DEVNULL)

    def init(self) -> None:
        subprocess.run(self.as_user + [str(self.initdb), "-D", self.data, "-U", "postgres", "--auth=trust",
                                       "-E", "UTF8"], check=True, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        self._ctl("-l", os.path.join(self.workdir, "log"), "-w", "-o",
                  f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop")

    def remove(self) -> None:
        subprocess.run(self.as_user + [str(self.pg_ctl), "-D", self.data, "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def throwaway_postgres_server() -> Iterator[PgServer]:
    server = PgServer()
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    with throwaway_postgres_server() as server:
        yield server.url


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new database on ``server_url``'s server, dropped afterwards."""
    url = make_url(server_url)
    name = f"hub_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


LOCK_KEY = "hub-test-session"


class RedisClaim:
    """A Redis database number no other test session holds (a lock key with a TTL)."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token

    def reset(self, client: redis.Redis) -> None:
        """Empty the database but keep this session's claim on it."""
        client.flushdb()
        client.set(LOCK_KEY, self.token, ex=3 * 3600)


@contextmanager
def claimed_redis_db(server_url: str) -> Iterator[RedisClaim]:
    base = server_url.rsplit("/", 1)[0] if server_url.count("/") > 2 else server_url
    token = uuid.uuid4().hex
    for db in range(1, 16):
        client = redis.Redis.from_url(f"{base}/{db}")
        if client.set(LOCK_KEY, token, nx=True, ex=3 * 3600):
            try:
                yield RedisClaim(f"{base}/{db}", token)
            finally:
                if client.get(LOCK_KEY) == token.encode():
                    client.flushdb()
                client.close()
            return
        client.close()
    raise RuntimeError("no free Redis database (1-15) for this test session")


@contextmanager
def services() -> Iterator[tuple[str, RedisClaim]]:
    """(database_url, redis claim) for this test session."""
    with _redis_server() as redis_server, _pg_server() as pg_server:
        with fresh_database(pg_server) as db_url, claimed_redis_db(redis_server) as redis_url:
            yield db_url, redis_url


@contextmanager
def _redis_server() -> Iterator[str]:
    url = os.environ.get("HUB_TEST_REDIS_URL")
    if url:
        yield url
    else:
        with throwaway_redis() as url:
            yield url


@contextmanager
def _pg_server() -> Iterator[str]:
    url = os.environ.get("HUB_TEST_DATABASE_URL")
    if url:
        yield url
    else:
        with throwaway_postgres() as url:
            yield url
