"""Shared fixtures for tests that need the real database servers (MariaDB, PostgreSQL).

A plain module, not a conftest: test files import the fixtures (``from dbfixtures import *``
brings exactly those in ``__all__``). In CI (``CI=true``) a missing server fails the test, so a
broken CI database can never turn into a green run; elsewhere the test is skipped.

Every test gets its own database, named ``phrsync_test_<pid>_<n>`` so parallel sessions and
helpers never collide; all of them are dropped when the session ends.

Server addresses can be moved with ``PHRSYNC_TEST_MARIADB`` / ``PHRSYNC_TEST_POSTGRES`` (URLs).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import pymysql
import pytest
from sqlalchemy.engine import make_url

__all__ = ["hdc_url", "mariadb_database", "mariadb_server", "postgres_server"]

MARIADB_URL = os.environ.get("PHRSYNC_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306")
POSTGRES_URL = os.environ.get("PHRSYNC_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI") == "true"

_counter = itertools.count(1)


def unavailable(what: str, err: BaseException) -> None:
    """Fail in CI, skip elsewhere: the rule for every test that needs a real server."""
    msg = f"{what} not reachable: {type(err).__name__}: {err}"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


def _mariadb_conn(database: str | None = None) -> pymysql.connections.Connection:
    u = make_url(MARIADB_URL)
    return pymysql.connect(
        host=u.host or "127.0.0.1", port=u.port or 3306, user=u.username or "root",
        password=u.password or "", database=database, connect_timeout=5, charset="utf8mb4",
    )


def unique_name(prefix: str = "phrsync_test") -> str:
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[str]:
    """The MariaDB server URL (no database part); drops every test database made from it at the end."""
    try:
        conn = _mariadb_conn()
        conn.close()
    except Exception as e:  # any failure to reach the server counts as "missing"
        unavailable("MariaDB at " + MARIADB_URL, e)
    yield MARIADB_URL
    conn = _mariadb_conn()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE %s", (f"phrsync\\_test\\_{os.getpid()}\\_%",))
            for (name,) in cur.fetchall():
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


@pytest.fixture
def mariadb_database(mariadb_server: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh, uniquely named database URLs on MariaDB (created lazily by the code
    under test, dropped right after the test)."""
    made: list[str] = []

    def make() -> str:
        name = unique_name()
        made.append(name)
        return f"{mariadb_server}/{name}"

    yield make
    conn = _mariadb_conn()
    try:
        with conn.cursor() as cur:
            for name in made:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


@pytest.fixture
def hdc_url(mariadb_database: Callable[[], str]) -> str:
    """One fresh HDC database URL per test (the database itself does not exist yet)."""
    return mariadb_database()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL server URL, or fail (CI) / skip (elsewhere) when it is not running."""
    try:
        import psycopg

        u = make_url(POSTGRES_URL)
        psycopg.connect(
            host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username or "postgres",
            dbname=u.database or "postgres", connect_timeout=5,
        ).close()
    except Exception as e:
        unavailable("PostgreSQL at " + POSTGRES_URL, e)
    return POSTGRES_URL
