"""Identical reads at the same time share one run, never one that started before they asked."""

from __future__ import annotations

import asyncio

import pytest

from core.adapters.coalesce import Coalescer


class Source:
    """A read whose answer is the number of the run (1, 2, ...), held open until released."""

    def __init__(self) -> None:
        self.runs = 0
        self.release = asyncio.Event()

    async def read(self) -> int:
        self.runs += 1
        n = self.runs
        await self.release.wait()
        return n


def test_a_caller_alone_runs_at_once_every_time() -> None:
    async def main() -> list[int]:
        src = Source()
        src.release.set()
        c: Coalescer[int] = Coalescer()
        return [await c.run("k", src.read) for _ in range(3)]

    assert asyncio.run(main()) == [1, 2, 3]


def test_callers_arriving_during_a_run_share_the_next_one() -> None:
    async def main() -> tuple[int, list[int], int, int]:
        src = Source()
        c: Coalescer[int] = Coalescer()
        first = asyncio.ensure_future(c.run("k", src.read))
        await asyncio.sleep(0)  # run 1 is in flight
        later = [asyncio.ensure_future(c.run("k", src.read)) for _ in range(50)]
        other = asyncio.ensure_future(c.run("other key", src.read))
        await asyncio.sleep(0)
        src.release.set()
        return await first, list(await asyncio.gather(*later)), await other, src.runs

    first, later, other, runs = asyncio.run(main())
    assert first == 1
    # the 50 did not get run 1 (it started before they asked): one run after it, shared
    assert len(set(later)) == 1 and later[0] not in (first, other)
    assert runs == 3  # run 1, the shared run, the other key's


def test_a_failure_reaches_every_caller_of_the_run_and_a_cancelled_caller_leaves_it_to_the_others() -> None:
    async def main() -> None:
        release = asyncio.Event()
        calls = 0

        async def failing() -> int:
            nonlocal calls
            calls += 1
            await release.wait()
            raise RuntimeError(f"run {calls} failed")

        c: Coalescer[int] = Coalescer()
        a = asyncio.ensure_future(c.run("k", failing))
        b = asyncio.ensure_future(c.run("k", failing))  # joins run 1: it has not started yet
        await asyncio.sleep(0)
        b.cancel()
        await asyncio.sleep(0)
        release.set()
        with pytest.raises(RuntimeError, match="run 1 failed"):
            await a
        assert b.cancelled() and calls == 1
        assert len(c) == 0  # nothing kept once the runs are over

    asyncio.run(main())
