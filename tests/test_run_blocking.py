"""The blocking API (sync_payloads, sync, retry) runs its coroutine on a loop of its own, also when the calling
thread already runs one (Playwright's sync API, a notebook, an async caller)."""

from __future__ import annotations

import asyncio

import pytest

from phrsync.delivery.agent import run_blocking


async def _answer(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


async def _fails() -> None:
    raise ValueError("bad build file")


def test_without_a_running_loop() -> None:
    assert run_blocking(_answer(21)) == 42


def test_inside_a_running_loop() -> None:
    async def caller() -> int:
        return run_blocking(_answer(4))

    assert asyncio.run(caller()) == 8


def test_an_error_reaches_the_caller_inside_a_running_loop() -> None:
    async def caller() -> None:
        run_blocking(_fails())

    with pytest.raises(ValueError, match="bad build file"):
        asyncio.run(caller())
