"""HTTP to Pipedrive: sessions, the shared rate limiter, the daily token budget, and every retry.

    PipedriveClient.get / iter_items / post / patch / delete
        -> one attempt: budget.reserve -> limiter.acquire -> session.request (timeout) -> observe headers
        -> retries, in this module only:
           429 burst         wait x-ratelimit-reset (+ jitter) for everyone, then again; capped
           429 daily         SyncStopped (the budget is spent until it resets)
           429, no headers   wait one burst window; a second such 429 for the same request is the
                             daily limit (a burst window has passed), so SyncStopped
           5xx, 524, network bounded exponential backoff with jitter; a POST first asks `recover`
                             whether the lost attempt was committed (again one timeout later when
                             the server may still be working), and returns that record if so
           no connection     the same backoff; once spent, SyncStopped: Pipedrive (or the base URL)
                             cannot be reached, so no other record would get through either
           401, 403 HTML     SyncStopped: bad token, or the abuse block (never retried)
           other 4xx         SyncError with Pipedrive's message, for this entity only

One `requests.Session` per worker thread; the API token travels only in the `x-api-token`
header and every message that leaves this module is redacted.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import urllib3

from ..config import Settings
from ..errors import SyncError, SyncStopped
from ..redact import redact

log = logging.getLogger(__name__)

PAGE_LIMIT = 500
BURST_WINDOW = 2.0  # seconds; Pipedrive's rolling window
FIRST_GUESS_LIMIT = 20  # the smallest plan's burst limit, until the headers say more
MAX_RATE_LIMIT_WAITS = 10  # 429s for one request before we conclude someone else uses the token
_COSTS = {("GET", False): 10, ("GET", True): 1, ("POST", False): 5, ("PATCH", True): 5, ("DELETE", True): 3}
_NAMED_COSTS = {"search": 20, "archived": 20}  # /deals/search, /deals/archived: a name where an id would be


def token_cost(method: str, path: str) -> int:
    """A request's documented token cost: v2 list 10, get 1, create/update 5, delete 3, search or archived
    list 20; v1 twice that."""
    parts = path.strip("/").split("/")
    cost = _NAMED_COSTS.get(parts[-1]) or _COSTS.get((method.upper(), len(parts) > 3), 10)
    return cost * 2 if parts[:2] == ["api", "v1"] else cost


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for 5xx and network errors: base * 2^(attempt-1), capped, times a random 0.5-1."""

    base: float = 0.5
    cap: float = 20.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        return min(self.cap, self.base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


class RateLimiter:
    """One rolling burst window shared by every worker thread.

    It remembers when it let each request go, so it never lets more than `limit` go within
    `window` (+ a small margin for jitter between sending and the server's clock). The limit
    comes from `x-ratelimit-limit`; `x-ratelimit-remaining` tells how much of the window other
    clients of the same token use, and that share is kept free for one window. A 429 holds
    everyone until the reset.
    """

    def __init__(self, window: float = BURST_WINDOW, limit: int = FIRST_GUESS_LIMIT, margin: float = 0.05, clock=None):
        self.window, self.limit, self.margin = window, limit, margin
        self._clock = clock or time.monotonic
        self._cond = threading.Condition()
        self._sends: list[float] = []
        self._hold_until = 0.0
        self._foreign, self._foreign_until = 0, 0.0

    def acquire(self) -> float:
        """Block until a request may go; returns the send time."""
        with self._cond:
            while True:
                now = self._clock()
                wait = self._wait_time(now)
                if wait <= 0:
                    self._sends.append(now)
                    return now
                self._cond.wait(wait)

    def _wait_time(self, now: float) -> float:
        if now < self._hold_until:
            return self._hold_until - now
        del self._sends[: bisect.bisect_right(self._sends, now - 2 * self.window)]
        limit = self.limit - (self._foreign if now < self._foreign_until else 0)
        in_window = self._sends[bisect.bisect_right(self._sends, now - self.window - self.margin) :]
        if len(in_window) < max(limit, 1):
            return 0.0
        return in_window[-max(limit, 1)] + self.window + self.margin - now

    def observe(self, limit: int | None, remaining: int | None, sent_at: float) -> None:
        """Learn from a response's headers: the limit, and how much of the window others use."""
        with self._cond:
            if limit:
                self.limit = limit
            if limit is None or remaining is None:
                return
            ours = bisect.bisect_right(self._sends, sent_at) - bisect.bisect_right(self._sends, sent_at - self.window)
            foreign = (limit - remaining) - ours
            now = self._clock()
            if foreign > 1 and (foreign > self._foreign or now >= self._foreign_until):
                self._foreign, self._foreign_until = foreign, now + self.window
                log.debug("Pipedrive counts %d more requests in the window than we sent", foreign)

    def hold(self, seconds: float) -> None:
        """Let no request go for `seconds` (after a 429)."""
        with self._cond:
            self._hold_until = max(self._hold_until, self._clock() + seconds)
            self._cond.notify_all()


class DailyBudget:
    """The daily token budget, minus what requests in flight may still cost.

    While Pipedrive sends `x-daily-ratelimit-token-remaining`, that figure rules: answers can
    overtake each other, so the lowest figure seen is the freshest. Without it (the header is
    undocumented and sometimes missing), the budget is `limit` (PIPEDRIVE_DAILY_BUDGET) minus the
    documented cost of every request this run sent. Either way every request in flight is booked
    in full: the budget may stop a few tokens early, never late. (A run that crosses the reset
    keeps the lower figure; the next run starts afresh.)
    """

    def __init__(self, limit: int | None = None) -> None:
        self._lock = threading.Lock()
        self.limit = limit
        self.remaining: int | None = None
        self.spent = 0  # the documented cost of every request sent by this run
        self._booked = 0
        self._high: int | None = None

    def reserve(self, cost: int) -> None:
        """Book a request's cost; raises SyncStopped when the budget left will not cover it."""
        with self._lock:
            left, source = self._left()
            if left is not None and left - self._booked < cost:
                raise SyncStopped(
                    f"the daily Pipedrive token budget is spent ({left} tokens left {source}, {self._booked} of them "
                    f"booked by requests in flight, the next request needs {cost}); run again after it resets",
                    status=429,
                )
            self._booked += cost

    def _left(self) -> tuple[int | None, str]:
        if self.remaining is not None:
            return self.remaining, "as Pipedrive reports it"
        if self.limit is not None:
            return self.limit - self.spent, f"of PIPEDRIVE_DAILY_BUDGET={self.limit}, counted by documented costs"
        return None, ""

    def release(self, cost: int, remaining: int | None, *, sent: bool = True) -> None:
        """A request is answered (or failed): drop its booking, count it if it went out, learn what is left."""
        with self._lock:
            self._booked -= cost
            self.spent += cost if sent else 0
            if remaining is not None:
                self.remaining = remaining if self.remaining is None else min(self.remaining, remaining)
                self._high = max(self._high or 0, remaining + cost)

    @property
    def used(self) -> int:
        """Tokens the account spent while we ran: from the headers when they came, else our own count."""
        if self._high is None or self.remaining is None:
            return self.spent
        return self._high - self.remaining


@dataclass
class ClientStats:
    """What the client sent: HTTP attempts by method and the 429s it met."""

    requests: Counter
    rate_limited: int = 0


class _RateLimited(Exception):
    """A 429 to wait out; `unsure` when no header said whether it was the burst or the daily limit."""

    def __init__(self, wait: float, *, unsure: bool = False):
        self.wait = wait
        self.unsure = unsure


class _Transient(Exception):
    """A failure that may pass: 5xx, 524, timeout, connection reset.

    `settled` means the origin server answered (500, 503), so whatever it did is done; after a
    timeout, a dropped connection or a gateway error (502, 504, 524) it may still be working.
    """

    def __init__(self, message: str, *, settled: bool, unreachable: bool = False):
        super().__init__(message)
        self.settled = settled
        self.unreachable = unreachable  # no connection was made: nothing was sent
        self.at = time.monotonic()


class PipedriveClient:
    """Pipedrive API v2 over HTTP, safe to share between worker threads."""

    def __init__(
        self, settings: Settings, *, policy: RetryPolicy | None = None, limiter: RateLimiter | None = None
    ) -> None:
        if not settings.pipedrive_api_key:
            raise SyncError("PIPEDRIVE_API_KEY is not set")
        self._token = settings.pipedrive_api_key
        self.base_url = settings.pipedrive_base_url.rstrip("/")
        self.timeout = settings.pipedrive_timeout
        self.max_retries = settings.pipedrive_max_retries
        self.policy = policy or RetryPolicy()
        self.limiters = {"general": limiter or RateLimiter(), "search": RateLimiter(limit=10)}
        self.budget = DailyBudget(settings.pipedrive_daily_budget)
        self.stats = ClientStats(Counter())
        self._lock = threading.Lock()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._clock_offset = timedelta(0)

    def __repr__(self) -> str:
        return f"PipedriveClient({self.base_url!r})"

    # ------------------------------------------------------------------ public calls

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a v2 path; returns the JSON body; raises SyncError / SyncStopped."""
        return self._call("GET", path, params=params)

    def iter_items(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a cursor-paginated list, 500 per page; raises SyncError / SyncStopped."""
        params = {**(params or {}), "limit": PAGE_LIMIT}
        while True:
            body = self.get(path, params)
            yield from body.get("data") or []
            cursor = (body.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return
            params["cursor"] = cursor

    def post(
        self, path: str, body: dict[str, Any], recover: Callable[[], dict[str, Any] | None] | None = None
    ) -> dict[str, Any]:
        """Create; before retrying a lost attempt, `recover()` looks for it; raises SyncError / SyncStopped."""
        return self._call("POST", path, body=body, recover=recover)

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Update (idempotent, so plainly retried); raises SyncError / SyncStopped."""
        return self._call("PATCH", path, body=body)

    def delete(self, path: str) -> dict[str, Any]:
        """Delete (idempotent: a second DELETE of a deleted record is a 404); raises SyncError / SyncStopped."""
        return self._call("DELETE", path)

    def server_time(self) -> datetime:
        """Pipedrive's clock (UTC), from the `Date` headers seen so far."""
        return datetime.now(UTC) + self._clock_offset

    def close(self) -> None:
        """Close every worker thread's session."""
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    # ------------------------------------------------------------------ retries (the only place)

    def _call(self, method: str, path: str, *, params=None, body=None, recover=None) -> dict[str, Any]:
        failures = waits = unsure = 0
        while True:
            try:
                return self._attempt(method, path, params, body)
            except _RateLimited as limited:
                waits += 1
                unsure += limited.unsure
                if unsure > 1:  # a whole burst window has passed since the first one: it is the day's budget
                    raise SyncStopped(
                        "Pipedrive answered 429 again after a full burst window, without rate-limit headers: "
                        "the daily token budget is spent; run again after it resets",
                        status=429,
                    ) from None
                if waits > MAX_RATE_LIMIT_WAITS:
                    raise SyncStopped(
                        f"still rate-limited after {MAX_RATE_LIMIT_WAITS} waits on {method} {path}; "
                        "is another client using this token?",
                        status=429,
                    ) from None
                self.limiters[_bucket(path)].hold(limited.wait)
            except _Transient as exc:
                failures += 1
                found = self._after_failure(method, path, exc, failures, recover)
                if found is not None:
                    return found

    def _after_failure(self, method: str, path: str, exc: _Transient, failures: int, recover) -> dict[str, Any] | None:
        """Back off; for a create whose answer was lost, look for what it may have committed."""
        if failures <= self.max_retries:
            delay = self.policy.delay(failures)
            log.info(
                "%s %s failed (%s); try %d of %d in %.1f s",
                method,
                path,
                exc,
                failures + 1,
                self.max_retries + 1,
                delay,
            )
            time.sleep(delay)
        if recover is not None and not exc.unreachable:  # a request that never connected committed nothing
            found = recover() or (None if exc.settled else self._recover_when_settled(exc, recover))
            if found is not None:
                log.info("%s %s was committed before its answer was lost; not sending it again", method, path)
                return {"success": True, "data": found}
        if failures > self.max_retries:
            if exc.unreachable:
                raise SyncStopped(
                    f"Pipedrive cannot be reached at {self.base_url} ({exc}; {failures} tries): check "
                    "PIPEDRIVE_BASE_URL and the network, then run again"
                )
            raise SyncError(f"{method} {path} failed {failures} times; last: {exc}", retryable=True)
        return None

    def _recover_when_settled(self, exc: _Transient, recover) -> dict[str, Any] | None:
        """Look again once the server has had another full timeout to finish what it may still be doing."""
        time.sleep(max(0.0, exc.at + self.timeout - time.monotonic()))
        return recover()

    # ------------------------------------------------------------------ one attempt

    def _attempt(self, method: str, path: str, params, body) -> dict[str, Any]:
        cost = token_cost(method, path)
        self.budget.reserve(cost)
        remaining, sent = None, False
        try:
            sent_at = self._acquire(path)
            with self._lock:
                self.stats.requests[method] += 1
            sent = True
            response = self._send(method, path, params, body)
            log.debug("%s %s -> %d", method, path, response.status_code)
            remaining = _int_header(response, "x-daily-ratelimit-token-remaining")
            sent = response.status_code not in (401, 403, 429)  # refused before it cost anything
        finally:
            self.budget.release(cost, remaining, sent=sent)
        self._observe(response, path, sent_at)
        return self._result(response, method, path, cost)

    def _acquire(self, path: str) -> float:
        """Wait for the path's window (search also counts in the general one); returns the send time."""
        bucket = _bucket(path)
        sent_at = self.limiters[bucket].acquire()
        if bucket != "general":
            self.limiters["general"].acquire()
        return sent_at

    def _send(self, method: str, path: str, params, body) -> requests.Response:
        try:
            return self._session().request(method, self.base_url + path, params=params, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            refused = _no_connection(exc)
            if refused:
                raise _Transient(redact(refused, [self._token]), settled=True, unreachable=True) from None
            raise _Transient(redact(f"{type(exc).__name__}: {exc}", [self._token]), settled=False) from None

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update({"x-api-token": self._token, "Accept": "application/json"})
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _observe(self, response: requests.Response, path: str, sent_at: float) -> None:
        limit = _int_header(response, "x-ratelimit-limit")
        self.limiters[_bucket(path)].observe(limit, _int_header(response, "x-ratelimit-remaining"), sent_at)
        date = response.headers.get("Date")
        if date:
            with contextlib.suppress(TypeError, ValueError):
                self._clock_offset = parsedate_to_datetime(date) - datetime.now(UTC)

    def _result(self, response: requests.Response, method: str, path: str, cost: int) -> dict[str, Any]:
        status = response.status_code
        if 200 <= status < 300:
            try:
                return response.json()
            except ValueError:
                raise _Transient(f"HTTP {status} with a body that is not JSON", settled=True) from None
        if status == 429:
            self._on_429(response, cost)
        reason = self._reason(response)
        if status == 401:
            raise SyncStopped(f"Pipedrive refused the API token (401: {reason})", status=401)
        if status == 403 and "json" not in response.headers.get("Content-Type", ""):
            raise SyncStopped(
                "Pipedrive blocked this token (403 page) after too many rate-limited requests; "
                "wait before running again",
                status=403,
            )
        if status >= 500:
            raise _Transient(f"HTTP {status}: {reason}", settled=status in (500, 503))
        raise SyncError(f"{method} {path}: HTTP {status}: {reason}", status=status)

    def _on_429(self, response: requests.Response, cost: int) -> None:
        with self._lock:
            self.stats.rate_limited += 1
        daily_left = _int_header(response, "x-daily-ratelimit-token-remaining")
        burst_left = _int_header(response, "x-ratelimit-remaining")
        if (daily_left is not None and daily_left < cost) or (daily_left is None and (burst_left or 0) >= 1):
            left = "" if daily_left is None else f" ({daily_left} tokens left)"
            raise SyncStopped(
                f"the daily Pipedrive token budget is spent{left}; run again after it resets",
                status=429,
            )
        unsure = daily_left is None and burst_left is None  # no header says which limit this is
        reset = _float_header(response, "x-ratelimit-reset") or _float_header(response, "Retry-After") or BURST_WINDOW
        wait = max(reset, BURST_WINDOW if unsure else 0) + random.uniform(0, BURST_WINDOW / 4)
        log.info("Pipedrive said 429 (%s); every worker waits %.1f s", "no headers" if unsure else "burst limit", wait)
        raise _RateLimited(wait, unsure=unsure)

    def _reason(self, response: requests.Response) -> str:
        try:
            body = response.json()
            text = str(body.get("error") or body) if isinstance(body, dict) else str(body)
        except ValueError:
            text = "HTML page" if "html" in response.headers.get("Content-Type", "") else response.text[:200]
        return redact(text[:300], [self._token])


def _bucket(path: str) -> str:
    return "search" if path.rstrip("/").endswith("/search") else "general"


def _int_header(response: requests.Response, name: str) -> int | None:
    value = _float_header(response, name)
    return None if value is None else int(value)


def _float_header(response: requests.Response, name: str) -> float | None:
    try:
        return float(response.headers[name])
    except (KeyError, ValueError):
        return None


def _no_connection(exc: requests.RequestException) -> str | None:
    """Why no connection could be made (refused, no such host), in a few words; None when one was."""
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    if not isinstance(reason, urllib3.exceptions.NewConnectionError):  # name resolution failures included
        return None
    return str(reason).split("): ", 1)[-1]
