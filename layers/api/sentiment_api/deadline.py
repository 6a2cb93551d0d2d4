"""Each request's deadline: the time it may still spend on its dependencies. It is the smaller of the
request budget (``REQUEST_BUDGET_S``, sized to the latency objective) and what the Lambda invocation has
left minus a reserve to answer in, so a retry is only ever started when it can finish in time, and the
function answers with a 5xx of its own before Lambda kills it (which API Gateway would turn into a bare
500 that no client can act on). The worst case of the whole path is tabled in docs/architecture.md."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Kept back from the invocation's remaining time: enough to build, validate, log and return the answer.
ANSWER_RESERVE_S = 0.25


@dataclass(frozen=True, slots=True)
class Deadline:
    expires_at: float  # on ``clock``
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def for_invocation(
        cls, budget_s: float, context: Any | None = None, clock: Callable[[], float] = time.monotonic
    ) -> Deadline:
        """Starts now: ``budget_s``, or less when the invocation has less time left (``context``)."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining):
            budget_s = min(budget_s, remaining() / 1000 - ANSWER_RESERVE_S)
        return cls(clock() + max(0.0, budget_s), clock)

    def remaining_s(self) -> float:
        return self.expires_at - self.clock()

    def allows(self, seconds: float) -> bool:
        """Whether something that may take ``seconds`` can still finish before the deadline."""
        return self.remaining_s() >= seconds
