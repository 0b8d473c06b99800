"""One generation at a time, and nobody waits without bound: the model server's scheduler.

One model is in memory, so requests take turns (first come, first served). A request waits for its turn at most
``queue_wait_s`` and only when fewer than ``max_queued`` are already waiting; otherwise it is refused at once (503).
Its generation then runs in a daemon thread with a :class:`GenerationControl` whose deadline is ``time_limit_s``
away: an engine that checks the control stops at the next token; the caller is answered at the deadline (plus a
short grace) whatever the engine does, and the model's turn passes on only when the generation has really ended.
``shutdown()`` (on SIGTERM) refuses new and waiting requests and stops the one in flight.

Written here because no library schedules a single in-process model this way: asyncio locks belong to one event
loop (a test client runs one per request), and a thread pool cannot bound waits nor stop a generation.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from deepmedix.inference.backends import GenerationControl

T = TypeVar("T")

GRACE_S = 1.0  # past the time limit, for an engine that stops only between tokens (a token may be slow)


class GateRefusal(Exception):
    """A request the scheduler did not (fully) serve: ``status`` 503 (busy, shutting down) or 504 (time limit)."""

    def __init__(self, status: int, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass(eq=False)
class _Ticket:
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event = field(default_factory=asyncio.Event)
    granted: bool = False  # the model was handed to this waiter


class GenerationGate:
    def __init__(self, time_limit_s: float, queue_wait_s: float, max_queued: int, grace_s: float = GRACE_S):
        self.time_limit_s = time_limit_s
        self.queue_wait_s = queue_wait_s
        self.max_queued = max_queued
        self.grace_s = grace_s
        self.closing = False
        self._lock = threading.Lock()
        self._busy = False
        self._waiting: deque[_Ticket] = deque()
        self._current: GenerationControl | None = None
        self.completed = 0
        self.timed_out = 0
        self.refused = 0

    def status(self) -> dict[str, int | bool]:
        with self._lock:
            return {
                "busy": self._busy,
                "queued": len(self._waiting),
                "completed": self.completed,
                "timed_out": self.timed_out,
                "refused": self.refused,
            }

    async def run(self, work: Callable[[GenerationControl], T]) -> T:
        """``work(control)`` in its turn, in a daemon thread; raises :class:`GateRefusal` when the request waited
        too long, the server is shutting down, or the generation passed the time limit."""
        ticket = self._enter()
        if ticket is not None:
            await self._wait_turn(ticket)
        control = GenerationControl(deadline=time.monotonic() + self.time_limit_s)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            self._current = control
            if self.closing:  # SIGTERM came between our turn and now
                control.cancel("shutdown")
        threading.Thread(
            target=self._work, args=(work, control, future), name="deepmedix-generate", daemon=True
        ).start()
        try:
            result = await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(future)), timeout=self.time_limit_s + self.grace_s
            )
        except TimeoutError:  # the engine did not stop at the deadline: answer now, it stops when it can
            control.cancel("time")
            result, control.stopped = None, True
        except asyncio.CancelledError:  # the client went away, or the server gave up waiting at shutdown
            control.cancel("cancelled")
            raise
        if control.stopped and control.reason == "time":
            with self._lock:
                self.timed_out += 1
            raise GateRefusal(
                504,
                f"the answer took longer than the time limit of {self.time_limit_s:g} s (--time-limit) and was "
                "stopped; ask for fewer new tokens or a shorter prompt",
            )
        if control.stopped:
            raise GateRefusal(503, "the server is shutting down; the answer was stopped", retry_after_s=5)
        return result  # type: ignore[return-value]

    def shutdown(self) -> None:
        """Refuse new requests, wake every waiter (they answer 503) and stop the generation in flight."""
        with self._lock:
            self.closing = True
            if self._current is not None:
                self._current.cancel("shutdown")
            waiting = list(self._waiting)
        for t in waiting:
            _wake(t)

    # --- turns ----------------------------------------------------------------------------------------------

    def _enter(self) -> _Ticket | None:
        """None: the model is ours now. A ticket: wait for it."""
        with self._lock:
            if self.closing:
                self.refused += 1
                raise GateRefusal(503, "the server is shutting down", retry_after_s=5)
            if not self._busy and not self._waiting:
                self._busy = True
                return None
            if len(self._waiting) >= self.max_queued:
                self.refused += 1
                raise GateRefusal(
                    503,
                    f"the model is busy and {len(self._waiting)} requests are already waiting (--max-queued); "
                    "try again later",
                    retry_after_s=self.queue_wait_s,
                )
            ticket = _Ticket(asyncio.get_running_loop())
            self._waiting.append(ticket)
            return ticket

    async def _wait_turn(self, ticket: _Ticket) -> None:
        try:
            await asyncio.wait_for(ticket.event.wait(), timeout=self.queue_wait_s)
        except TimeoutError:
            pass  # decided below: the turn may have come just as the wait ran out
        except BaseException:  # cancelled: hand on a turn given to us meanwhile
            self._leave(ticket)
            raise
        with self._lock:
            if ticket.granted and not self.closing:
                return
        self._leave(ticket)
        with self._lock:
            self.refused += 1
        if self.closing:
            raise GateRefusal(503, "the server is shutting down", retry_after_s=5)
        raise GateRefusal(
            503,
            f"the model stayed busy for the longest wait of {self.queue_wait_s:g} s (--queue-wait); try again later",
            retry_after_s=self.queue_wait_s,
        )

    def _leave(self, ticket: _Ticket) -> None:
        with self._lock:
            if ticket.granted:
                self._hand_on()
            else:
                self._waiting.remove(ticket)

    def _work(
        self, work: Callable[[GenerationControl], T], control: GenerationControl, future: concurrent.futures.Future[T]
    ) -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = work(control)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting request, which reports it
            error = e
        with self._lock:  # the model is free before its answer is: the next request is not kept waiting on it
            self._current = None
            self.completed += 1
            self._hand_on()
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def _hand_on(self) -> None:
        """The model is free: give it to the first waiter still there (called with the lock held)."""
        while self._waiting:
            ticket = self._waiting.popleft()
            ticket.granted = True
            if _wake(ticket):
                return
        self._busy = False


def _wake(ticket: _Ticket) -> bool:
    try:
        ticket.loop.call_soon_threadsafe(ticket.event.set)
    except RuntimeError:  # its event loop is closed: that waiter is gone
        return False
    return True


__all__ = ["GRACE_S", "GateRefusal", "GenerationGate"]
