"""The background worker that runs in each instance's lifespan: outbound deliveries, inbound
events, housekeeping.

A loop calls each job in turn; a job returns how much it did. While there is work it goes round
again at once; when all jobs are idle it sleeps `poll_seconds`, or until `wake()` (called after
an inbound webhook is stored). Instances coordinate through the database alone (leases in
`rest.leases`), so any number may run.

`stop()` lets the attempt in flight finish (each attempt is bounded by its timeout), hands back
work claimed but not started, and only then cancels what is still running; anything cut short
stays leased and another instance, or this one after a restart, takes it up when the lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

log = logging.getLogger("tandem.worker")

Job = Callable[[], Awaitable[int]]


class Worker:
    def __init__(
        self, jobs: Sequence[tuple[str, Job]], *, poll_seconds: float, on_stop: Sequence[Callable[[], None]] = ()
    ) -> None:
        self.jobs = list(jobs)
        self.poll_seconds = poll_seconds
        self.on_stop = list(on_stop)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="tandem-worker")

    async def stop(self, grace_seconds: float) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        for callback in self.on_stop:
            callback()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace_seconds)
        except TimeoutError:
            log.warning("worker still busy after %.1f s; cancelling (leases will expire)", grace_seconds)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while not self._stopping:
            done = 0
            for name, job in self.jobs:
                if self._stopping:
                    break
                try:
                    done += await job()
                except Exception:
                    # A database hiccup must not end the worker for the life of the process:
                    # log it with its traceback and carry on at the next poll.
                    log.exception("background job %s failed", name)
            if done == 0 and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
