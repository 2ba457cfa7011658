"""What the browser tests stand on: Debian's Chromium driven by Playwright (never a browser Playwright downloads),
and the monitoring web served on a free loopback port over a small real province (synth → import → build →
sandbox → sync, :mod:`webprovince`), with one account of each role made through the web's own account store.

Chromium missing: in CI (``CI`` set) every browser test fails, elsewhere it is skipped with the reason — the rule
of the database fixtures (tests/dbfixtures.py). Screenshots the tests keep, and one of each failing test, go to
``tests/artifacts/`` (not committed; CI prints where they are)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import Account, Site

CHROMIUM = Path(os.environ.get("PHRSYNC_CHROMIUM", "/usr/bin/chromium"))
IN_CI = bool(os.environ.get("CI"))
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def unavailable(what: str) -> None:
    """Fail in CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(what)
    pytest.skip(what)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``tests/artifacts/``: screenshots and files the tests keep for a person to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module (not per session: Playwright's sync API runs an event loop in the
    main thread while it is started, and every later test calling ``asyncio.run`` would fail): Debian's /usr/bin/chromium (``PHRSYNC_CHROMIUM`` to move it),
    ``--no-sandbox`` because the tests run as root in a container, where Chromium's sandbox cannot start."""
    if not CHROMIUM.exists():
        unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium fonts-thai-tlwg)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        unavailable(f"playwright is not installed ({e}): pip install -e '.[test]'")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                               args=["--no-sandbox", "--disable-dev-shm-usage"])
    except Exception as e:  # a Chromium that cannot start is as good as none
        pw.stop()
        unavailable(f"Chromium at {CHROMIUM} did not start: {e}")
    try:
        yield b
    finally:
        b.close()
        pw.stop()


def _pick(p: Any) -> tuple[str, str, str, str]:
    """(the district to give the district viewer, a facility of it, another of it, a facility elsewhere),
    from the facilities of the build as the web's directory places them."""
    from phrsync.web import model

    places = model.directory(p.sources())
    by_district: dict[str, list[str]] = {}
    for h in p.facilities:
        d = places[h].district_code if h in places else None
        if d:
            by_district.setdefault(d, []).append(h)
    district = max(sorted(by_district), key=lambda d: len(by_district[d]))
    if len(by_district[district]) < 2 or len(by_district) < 2:
        raise AssertionError(f"the province is too small for the browser tests: {by_district}")
    other = next(h for d in sorted(by_district) if d != district for h in by_district[d])
    return district, by_district[district][0], by_district[district][1], other


@pytest.fixture(scope="module")
def site(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The monitoring web in a thread over a small province sent once to the sandbox (which stays up, for
    "send again"), with an admin, a district viewer and a facility user. (It asks for the browser first: without
    one there is no point making the province.)"""
    from argon2 import PasswordHasher
    from webprovince import province

    from phrsync.web.app import WebOptions, create_app
    from phrsync.web.auth import AuthStore
    from phrsync.web.server import running

    root = tmp_path_factory.mktemp("web-province")
    with province(root) as p:
        district, mine, neighbour, other = _pick(p)
        # argon2 at its cheapest: the tests sign in dozens of times (the site's own hasher is the default's)
        store = AuthStore(p.state_url, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        accounts = {
            "admin": Account("somchai.admin", secrets.token_urlsafe(12), "admin"),
            "district": Account("suda.district", secrets.token_urlsafe(12), "district", district=district),
            "facility": Account("malee.facility", secrets.token_urlsafe(12), "facility", facility=mine),
        }
        for a in accounts.values():
            store.add_user(a.username, a.password, a.role, district=a.district, facility=a.facility, client="test")
        app = create_app(p.sources(), WebOptions(), store, delivery=lambda: p.settings)
        with running(app) as w:
            yield Site(w.base_url, p, app, accounts, mine=mine, other=other, neighbour=neighbour)
        store.close()


@pytest.fixture
def context(browser: Any, request: pytest.FixtureRequest, artifacts: Path) -> Iterator[Any]:
    """A fresh browser profile per test (its own cookies), Thai and in Bangkok time, downloads allowed; a failing
    test leaves a screenshot of each of its pages in tests/artifacts/."""
    ctx = browser.new_context(locale="th-TH", timezone_id="Asia/Bangkok", accept_downloads=True,
                              viewport={"width": 1366, "height": 900})
    ctx.set_default_timeout(15_000)
    yield ctx
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        for i, pg in enumerate(ctx.pages):
            # the page may be gone with the failure; the test's own error says why
            with contextlib.suppress(Exception):
                pg.screenshot(path=str(artifacts / f"FAILED-{name}-{i}.png"), full_page=True)
    ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the test, so the ``context`` fixture knows whether the test failed."""
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{rep.when}", rep)
