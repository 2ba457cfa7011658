"""What the browser tests share besides fixtures: the site's description and the few steps a person takes on
every test (signing in), and keeping a file for a person to look at."""

from __future__ import annotations

import concurrent.futures
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    role: str
    district: str | None = None
    facility: str | None = None


@dataclass
class Site:
    """The web over the province: where it answers, its accounts, the province behind it."""

    base_url: str
    province: Any  # webprovince.Province
    app: Any
    accounts: dict[str, Account] = field(default_factory=dict)  # by role: admin, district, facility
    mine: str = ""  # the facility user's facility
    other: str = ""  # a facility of another district, which the facility and district users may not see
    neighbour: str = ""  # another facility of the district user's district

    def url(self, path: str) -> str:
        return self.base_url + path



def login(page: Any, site: Site, role: str, next_path: str = "/") -> Account:
    """Sign in through the login form, as a person does; waits until the site has left the login page."""
    a = site.accounts[role]
    page.goto(site.url(f"/login?next={next_path}"))
    page.fill("input[name=username]", a.username)
    page.fill("input[name=password]", a.password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/login" not in u)
    return a


def keep(src: Path, artifacts: Path, name: str) -> Path:
    """Copy a file a test made into tests/artifacts/ under ``name``."""
    dst = artifacts / name
    shutil.copyfile(src, dst)
    return dst


def off_loop(fn: Callable[[], T]) -> T:
    """``fn()`` in a thread of its own: Playwright's sync API keeps an asyncio loop running in the test's thread,
    and the agent (``sync``) runs its own loop, which asyncio refuses to start inside another."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()
