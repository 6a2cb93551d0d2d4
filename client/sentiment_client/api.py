"""POST /predict/batch with the API's limits, retries and rate limits.

One call of `BatchApi.score` sends one batch and answers one Outcome per text, in order. What it does with
each answer:

=====================  ==========================================================================
200                    results and item errors, by index: every index of the batch exactly once, each
                       sentiment a known label; any other 200 is a bad answer, retried like a 500 (up
                       to 4 attempts, then BAD_RESPONSE)
429                    wait Retry-After (else RateLimit ``t``, else backoff) with *every* sender (the
                       RateGate); up to 10 attempts
503                    wait Retry-After (else backoff), this sender; up to 6 attempts
500 / 502 / 504        capped exponential backoff with jitter; up to 4 attempts
no answer              (dropped, reset, timed out) backoff, up to 4 attempts, then ApiUnreachable;
                       nothing to connect to (refused, a name that does not resolve) before any
                       answer: ApiUnreachable at once
401 / 403              AuthRejected (a minted development token is minted again once first)
404 / 405              EndpointNotFound (the URL is not this API)
400 / 413              the request is refused, not a text: the batch is split in halves, each sent
                       (with its own retries), down to single texts, so that only a text refused on
                       its own gets the code (so is any 4xx whose code is a text's own, such as
                       VALIDATION_ERROR)
other 4xx (415 ...)    not retried: every row of the batch gets the error's code
=====================  ==========================================================================

A refusal is the client's or the API's fault, not the rows', so its code (INVALID_JSON, BAD_REQUEST,
PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE ...) is not a permanent error and a rerun sends those rows again;
only a text that a 400 VALIDATION_ERROR refuses on its own keeps it for good. A batch none of whose texts
got an answer (refused even one by one, with a code that is not the text's own) counts as a failed batch
below.

Every answer's ``RateLimit: "per-user";r=<left>;t=<s>`` is read: at ``r=0`` every sender pauses until ``t``
has passed, so a run rarely sees a 429 at all. (On an allowed answer this API's ``t`` is the time until
the bucket is full again, up to 120 s: the pause costs no throughput on average, since the 200 requests
it then allows are what the bucket's 100/min refill gives in that time.) Retries that run
out leave the batch's rows with the last error's code (RATE_LIMITED, MODEL_UNAVAILABLE, BAD_GATEWAY ...),
which a rerun retries; when `failed_batches_to_stop` batches in a row run out, or the API stops answering
at all, the run stops (ApiFailing, ApiUnreachable) rather than failing every remaining row slowly.

Time goes through a Clock (``now``, ``sleep``), so tests run the real retry logic on simulated time and
Ctrl-C cuts every sleep short.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from .errors import ClientError
from .transport import HttpResponse, Transport, TransportError

#: The API's limits (docs/openapi.yaml, POST /predict/batch).
MAX_BATCH_TEXTS = 25
MAX_BODY_BYTES = 32_768
MAX_TEXT_CHARS = 1024
LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
#: Row errors that are the row's own: the same text fails the same way again, so a rerun keeps them. Every
#: other code (RATE_LIMITED, MODEL_UNAVAILABLE, BAD_GATEWAY, BAD_RESPONSE, INVALID_JSON ...) is retried by a
#: rerun.
PERMANENT_ERRORS = frozenset({"EMPTY_TEXT", "VALIDATION_ERROR", "INVALID_ENCODING", "MALFORMED_ROW"})
#: Request-level refusals that say nothing about which text: the batch is split and sent again.
_SPLIT_STATUSES = frozenset({400, 413})
#: The bytes of ``{"texts":[]}``: a body is this plus each text's JSON string plus a comma between two.
_BODY_OVERHEAD = len(b'{"texts":[]}')
_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
#: Codes for answers without the API's error body (API Gateway's own ``{"message": ...}``, a proxy's page).
_STATUS_CODES = {
    400: "BAD_REQUEST",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


# ---- outcomes and errors -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Outcome:
    """What one text got: a label (scores and model version when the API gave them) or an error code."""

    sentiment: str = ""
    #: negative, neutral, positive (LABELS order)
    scores: tuple[float, float, float] | None = None
    model_version: str = ""
    error: str = ""


class Cancelled(Exception):
    """The run is stopping (Ctrl-C, a fatal error in another sender): no new request, no more waiting."""


class FatalApiError(ClientError):
    """The run cannot go on: every later batch would fail the same way."""


class AuthRejected(FatalApiError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the API refused the token ({status} {message})")
        self.status = status


class EndpointNotFound(FatalApiError):
    def __init__(self, endpoint: str, status: int) -> None:
        super().__init__(f"{endpoint} answered {status}: this URL is not the sentiment API (check --url)")


class ApiUnreachable(FatalApiError):
    def __init__(self, url: str, reason: str, *, refused: bool) -> None:
        super().__init__(f"cannot reach the API at {url} ({reason})")
        self.url = url
        self.refused = refused


class ApiFailing(FatalApiError):
    def __init__(self, batches: int, code: str) -> None:
        super().__init__(f"{batches} batches in a row failed after their retries (last: {code})")


class BadResponse(Exception):
    """A 200 whose body is not the documented answer."""


# ---- time ----------------------------------------------------------------------------------------
class Clock:
    """Monotonic time and a sleep that `stop` cuts short (then raises Cancelled)."""

    def __init__(self) -> None:
        self._stopped = threading.Event()

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if self._stopped.wait(max(0.0, seconds)):
            raise Cancelled

    def stop(self) -> None:
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def check(self) -> None:
        if self.stopped:
            raise Cancelled


class RateGate:
    """One pause shared by every sender: a request waits until the pause is over."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._until = 0.0
        self.pauses = 0
        self.paused_s = 0.0

    def pause_until(self, deadline: float) -> None:
        with self._lock:
            start = max(self._until, self._clock.now())
            if deadline > start:
                if self._until <= self._clock.now():
                    self.pauses += 1
                self.paused_s += deadline - start
                self._until = deadline

    def remaining_s(self) -> float:
        with self._lock:
            return max(0.0, self._until - self._clock.now())

    def wait(self) -> None:
        while (left := self.remaining_s()) > 0:
            self._clock.sleep(left)
        self._clock.check()


# ---- tokens --------------------------------------------------------------------------------------
class TokenSource(Protocol):
    def get(self) -> str: ...

    def refresh(self) -> bool:
        """Gets a new token; False when there is no other one to try."""
        ...


class StaticToken:
    def __init__(self, token: str) -> None:
        self._token = token

    def get(self) -> str:
        return self._token

    def refresh(self) -> bool:
        return False


class MintedToken:
    """A development token minted on demand, and again when the API refuses it (it expires after an hour)."""

    def __init__(self, mint: Callable[[], str]) -> None:
        self._mint = mint
        self._lock = threading.Lock()
        self._token = mint()

    def get(self) -> str:
        with self._lock:
            return self._token

    def refresh(self) -> bool:
        token = self._mint()
        with self._lock:
            self._token = token
        return True


# ---- the retry policy ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RetryPolicy:
    #: attempts per batch and kind of failure (the first try included)
    rate_limited_attempts: int = 10
    unavailable_attempts: int = 6
    server_error_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 20.0
    #: the longest wait a Retry-After or RateLimit header can impose
    max_wait_s: float = 300.0
    #: batches in a row that ran out of retries before the run stops
    failed_batches_to_stop: int = 3

    def attempts(self, kind: str) -> int:
        return {"rate_limited": self.rate_limited_attempts, "unavailable": self.unavailable_attempts}.get(
            kind, self.server_error_attempts
        )

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Capped exponential backoff with "equal jitter": half fixed, half random (attempt 1: 0.25..0.5 s)."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(frozen=True, slots=True)
class _Failure:
    kind: str  # rate_limited | unavailable | server_error | connection
    code: str  # what the batch's rows get when the retries run out
    label: str  # for the retry statistics: "429", "503", "connection" ...
    wait_s: float | None = None  # what the server asked for
    detail: str = ""


@dataclass(frozen=True, slots=True)
class _Refused:
    """A 4xx for the request as a whole (400, 413, 415 ...): not retried as it is."""

    status: int
    code: str


# ---- the batch call ------------------------------------------------------------------------------
def text_size(text: str) -> int:
    """The bytes `text` takes in a request body (a UTF-8 JSON string)."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8"))


def body_size(sizes: Sequence[int]) -> int:
    return _BODY_OVERHEAD + sum(sizes) + max(0, len(sizes) - 1)


def encode_body(texts: Sequence[str]) -> bytes:
    return json.dumps({"texts": list(texts)}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class BatchApi:
    def __init__(
        self,
        url: str,
        token: TokenSource,
        transport: Transport,
        clock: Clock,
        *,
        policy: RetryPolicy | None = None,
        timeout_s: float = 35.0,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.endpoint = f"{self.url}/predict/batch"
        self.gate = RateGate(clock)
        self.retries: Counter[str] = Counter()
        self.requests = 0
        #: refused batches split in halves and sent again (a 400, a 413 ...)
        self.splits = 0
        self._token = token
        self._transport = transport
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._timeout_s = timeout_s
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._lock = threading.Lock()
        self._answered = False
        self._failed_in_a_row = 0

    def score(self, texts: Sequence[str]) -> list[Outcome]:
        outcomes, refused = self._send(texts)
        if refused is not None:  # not one text got an answer: as a batch whose retries ran out
            self._count_failed_batch(refused)
        return outcomes

    def _send(self, texts: Sequence[str]) -> tuple[list[Outcome], str | None]:
        """The outcomes, and the refusal's code when every text was refused on its own for a reason that is
        not the text's own (else None)."""
        body = encode_body(texts)
        if not texts or len(texts) > MAX_BATCH_TEXTS or len(body) > MAX_BODY_BYTES:
            raise ValueError(f"a batch of {len(texts)} texts and {len(body)} bytes is outside the API's limits")
        attempts: Counter[str] = Counter()
        refreshed = False
        while True:
            self.gate.wait()
            try:
                answer = self._attempt(body, len(texts))
            except AuthRejected:
                if refreshed or not self._token.refresh():
                    raise
                refreshed = True
                continue
            if isinstance(answer, _Refused):
                return self._refused(texts, answer)
            if not isinstance(answer, _Failure):
                return answer, None
            attempts[answer.kind] += 1
            if attempts[answer.kind] >= self._policy.attempts(answer.kind):
                return self._give_up(answer, len(texts)), None
            with self._lock:
                self.retries[answer.label] += 1
            wait_s = answer.wait_s
            if wait_s is None:
                wait_s = self._policy.backoff_s(attempts[answer.kind], self._rng)
            if answer.kind == "rate_limited":
                self.gate.pause_until(self._clock.now() + wait_s)
            else:
                self._clock.sleep(wait_s)

    def _refused(self, texts: Sequence[str], refusal: _Refused) -> tuple[list[Outcome], str | None]:
        # a code that names a text's fault is a permanent error: only a text refused on its own may keep it
        own = refusal.code in PERMANENT_ERRORS
        if (refusal.status in _SPLIT_STATUSES or own) and len(texts) > 1:
            with self._lock:
                self.splits += 1
            half = len(texts) // 2
            first, first_refused = self._send(texts[:half])
            second, second_refused = self._send(texts[half:])
            refused = second_refused if first_refused is not None else None
            return first + second, refused
        return [Outcome(error=refusal.code)] * len(texts), None if own else refusal.code

    def _attempt(self, body: bytes, count: int) -> list[Outcome] | _Failure | _Refused:
        """One request: the outcomes, or a failure worth retrying; raises the fatal errors."""
        headers = {
            "Authorization": f"Bearer {self._token.get()}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        with self._lock:
            self.requests += 1
        try:
            response = self._transport.post(self.endpoint, body, headers, self._timeout_s)
        except TransportError as error:
            if error.refused and not self._answered:
                raise ApiUnreachable(self.url, error.reason, refused=True) from None
            return _Failure("connection", "UNREACHABLE", "connection", detail=error.reason)
        self._answered = True
        self._observe_rate_limit(response)
        status = response.status
        if status == 200:
            try:
                outcomes = parse_answer(response.body, count)
            except BadResponse:
                return _Failure("server_error", "BAD_RESPONSE", "bad answer")
            with self._lock:
                self._failed_in_a_row = 0
            return outcomes
        code, message = _error_of(response)
        if status in (401, 403):
            raise AuthRejected(status, message)
        if status in (404, 405):
            raise EndpointNotFound(self.endpoint, status)
        if status == 429:
            return _Failure("rate_limited", code, "429", self._server_wait(response))
        if status == 503:
            return _Failure("unavailable", code, "503", _retry_after(response, self._policy.max_wait_s))
        if status >= 500 or 200 <= status < 300:
            return _Failure("server_error", code, str(status))
        return _Refused(status, code)  # 400, 413, 415 ...: the request itself is refused

    def _give_up(self, failure: _Failure, count: int) -> list[Outcome]:
        if failure.kind == "connection":
            attempts = self._policy.attempts(failure.kind)
            raise ApiUnreachable(self.url, f"no answer in {attempts} attempts; last: {failure.detail}", refused=False)
        self._count_failed_batch(failure.code)
        return [Outcome(error=failure.code)] * count

    def _count_failed_batch(self, code: str) -> None:
        with self._lock:
            self._failed_in_a_row += 1
            if self._failed_in_a_row >= self._policy.failed_batches_to_stop:
                raise ApiFailing(self._failed_in_a_row, code)

    def _server_wait(self, response: HttpResponse) -> float | None:
        wait = _retry_after(response, self._policy.max_wait_s)
        if wait is None:
            wait = _rate_limit_reset(response)
        return None if wait is None else min(wait, self._policy.max_wait_s)

    def _observe_rate_limit(self, response: HttpResponse) -> None:
        reset = _rate_limit_reset(response)
        if reset:
            self.gate.pause_until(self._clock.now() + min(reset, self._policy.max_wait_s))


# ---- reading answers -----------------------------------------------------------------------------
def parse_answer(body: bytes, count: int) -> list[Outcome]:
    """The 200 answer: one Outcome per index. Every index 0..count-1 must come exactly once across results and
    errors, and every result must have a known label: anything else is a BadResponse (an answer that misnumbers
    its items would put one text's label on another row)."""
    try:
        document = json.loads(body)
    except ValueError:
        raise BadResponse("not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise BadResponse("no results list")
    version = document.get("model_version")
    version = version if isinstance(version, str) else ""
    outcomes: list[Outcome | None] = [None] * count
    for item in document["results"]:
        index = _index(item, count)
        label = item.get("sentiment") if index is not None else None
        if index is None or outcomes[index] is not None or label not in LABELS:
            raise BadResponse(f"result {item!r}")
        outcomes[index] = Outcome(sentiment=label, scores=_scores(item.get("scores")), model_version=version)
    errors = document.get("errors") or []
    if not isinstance(errors, list):
        raise BadResponse("errors is not a list")
    for item in errors:
        index = _index(item, count)
        if index is None or outcomes[index] is not None:
            raise BadResponse(f"error {item!r}")
        outcomes[index] = Outcome(error=_code(item.get("code"), "ITEM_ERROR"))
    answered = [outcome for outcome in outcomes if outcome is not None]
    if len(answered) != count:
        raise BadResponse(f"no result for index {outcomes.index(None)}")
    return answered


def _index(item: Any, count: int) -> int | None:
    index = item.get("index") if isinstance(item, dict) else None
    return index if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < count else None


def _scores(value: Any) -> tuple[float, float, float] | None:
    if not isinstance(value, dict):
        return None
    try:
        negative, neutral, positive = (float(value[label]) for label in LABELS)
    except (KeyError, TypeError, ValueError):
        return None
    return negative, neutral, positive


def _code(value: Any, fallback: str) -> str:
    return value if isinstance(value, str) and _CODE.fullmatch(value) else fallback


def _error_of(response: HttpResponse) -> tuple[str, str]:
    """(code, message) of an error answer: the API's error body, API Gateway's {"message"}, or the status."""
    fallback = _STATUS_CODES.get(response.status, f"HTTP_{response.status}")
    try:
        document = json.loads(response.body)
    except ValueError:
        return fallback, f"HTTP {response.status}"
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        error = document["error"]
        return _code(error.get("code"), fallback), str(error.get("message") or error.get("code") or "")
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return fallback, document["message"]
    return fallback, f"HTTP {response.status}"


def _retry_after(response: HttpResponse, cap_s: float) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP date."""
    value = (response.header("Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(0.0, seconds), cap_s)


_RATE_LIMIT_ITEM = re.compile(r'^\s*(?:"[^"]*"|[A-Za-z*][\w*.:/-]*)((?:\s*;\s*[a-z*][\w.*-]*=[^;,]*)*)\s*$')


def _rate_limit_reset(response: HttpResponse) -> float | None:
    """``RateLimit: "per-user";r=0;t=12``: the seconds to wait when a policy has nothing left (else None)."""
    value = response.header("RateLimit")
    if not value:
        return None
    waits: list[float] = []
    for item in value.split(","):
        match = _RATE_LIMIT_ITEM.match(item)
        if not match:
            continue
        params = dict(part.strip().partition("=")[::2] for part in match.group(1).split(";") if "=" in part)
        try:
            if int(params.get("r", "1")) <= 0:
                waits.append(float(params.get("t", "0")))
        except ValueError:
            continue
    return max(waits) if waits else None
