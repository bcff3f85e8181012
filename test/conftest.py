"""Shared fixtures: a settings factory and a `db_url` on SQLite, PostgreSQL and MySQL.

PostgreSQL and MySQL come from TEST_POSTGRES_URL and TEST_MYSQL_URL. Locally, without them,
those cases skip with a reason; `.ci/run` sets both, so in CI they always run. Every test gets
its own schema (PostgreSQL), database (MySQL) or file (SQLite) and drops it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from processor.config import Settings
from processor.db import create_engine, normalise_url, release_engines

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
BACKENDS = ("sqlite", "postgres", "mysql")


def _server_url(backend: str) -> str:
    env = {"postgres": "TEST_POSTGRES_URL", "mysql": "TEST_MYSQL_URL"}[backend]
    url = os.environ.get(env)
    if not url:
        if os.environ.get("CI_REQUIRE_DATABASES") == "1":
            pytest.fail(f"{env} is not set, and CI requires the {backend} tests to run")
        pytest.skip(f"{env} is not set; set it to run the {backend} tests")
    return url


@pytest.fixture(scope="session")
def server_engines() -> Iterator[dict[str, sa.Engine]]:
    engines: dict[str, sa.Engine] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()


def _isolated_url(backend: str, tmp_path: Path, server_engines: dict) -> tuple[str, callable]:
    """A URL of a fresh, empty namespace on `backend`, and a function that drops it."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}", lambda: None
    base = _server_url(backend)
    name = f"t_{uuid.uuid4().hex[:12]}"
    if backend not in server_engines:
        server_engines[backend] = create_engine(base)
    admin = server_engines[backend]
    url = normalise_url(base)
    if backend == "postgres":
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        # Its own application name too, so a test that hunts for its own sessions never touches another's.
        isolated = url.update_query_dict({"options": f"-csearch_path={name}", "application_name": f"processor-{name}"})

        def drop() -> None:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))

    else:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        isolated = url.set(database=name)

        def drop() -> None:
            with admin.begin() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))

    return isolated.render_as_string(hide_password=False), drop


def _namespace(backend: str, tmp_path: Path, server_engines: dict) -> Iterator[str]:
    url, drop = _isolated_url(backend, tmp_path, server_engines)
    yield url
    release_engines()
    drop()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path, server_engines) -> Iterator[str]:
    """A database URL on each backend, in a namespace of its own."""
    yield from _namespace(request.param, tmp_path, server_engines)


@pytest.fixture
def postgres_url(tmp_path, server_engines) -> Iterator[str]:
    yield from _namespace("postgres", tmp_path, server_engines)


@pytest.fixture
def mysql_url(tmp_path, server_engines) -> Iterator[str]:
    yield from _namespace("mysql", tmp_path, server_engines)


@pytest.fixture
def engine_of():
    """engine_of(url) -> a test-side engine (one per URL), disposed at the end of the test."""
    engines: dict[str, sa.Engine] = {}

    def make(url: str) -> sa.Engine:
        if url not in engines:
            engines[url] = create_engine(url)
        return engines[url]

    yield make
    for engine in engines.values():
        engine.dispose()


@pytest.fixture
def make_settings(tmp_path):
    """make_settings(**fields) -> Settings with test-friendly defaults (inline, no progress bar)."""

    def make(**fields) -> Settings:
        base = {
            "dest_sql": f"sqlite:///{tmp_path / 'default.db'}",
            "load_workers": 1,
            "progress": "off",
        }
        base.update(fields)
        return Settings(**base)

    return make


# ---------------------------------------------------------------- the fake Pipedrive


@pytest.fixture
def pipedrive_fake():
    """pipedrive_fake(**config) -> a started FakePipedrive on 127.0.0.1, stopped after the test.

    Defaults are fast (a wide burst window, no latency, no faults); tests narrow what they test.
    """
    from pipedrive_fake import FakeConfig, FakePipedrive

    fakes = []

    def start(**config) -> FakePipedrive:
        fake = FakePipedrive(FakeConfig(**{"burst_limit": 1000, "seed": 1, **config})).start()
        fakes.append(fake)
        return fake

    yield start
    for fake in fakes:
        fake.stop()
