"""The Pipedrive client: token costs, the shared rate limiter, the daily budget, and its retries (against the fake)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from processor.errors import SyncError, SyncStopped
from processor.pipedrive.client import DailyBudget, PipedriveClient, RateLimiter, RetryPolicy, token_cost

TOKEN = "client-test-token"
FAST = RetryPolicy(base=0.01, cap=0.05)


@pytest.mark.parametrize(
    ("method", "path", "cost"),
    [
        ("GET", "/api/v2/deals", 10),
        ("GET", "/api/v2/deals/7", 1),
        ("POST", "/api/v2/persons", 5),
        ("PATCH", "/api/v2/persons/7", 5),
        ("DELETE", "/api/v2/deals/7", 3),
        ("GET", "/api/v2/persons/search", 20),
        ("GET", "/api/v2/deals/archived", 20),
        ("GET", "/api/v2/dealFields", 10),
        ("POST", "/api/v2/personFields", 5),
        ("GET", "/api/v2/stages/3", 1),
        ("GET", "/api/v1/users/3", 2),
        ("GET", "/api/v1/dealFields", 20),
    ],
)
def test_token_costs_follow_the_v2_spec(method, path, cost):
    assert token_cost(method, path) == cost


def _acquire_from_threads(limiter: RateLimiter, threads: int, each: int) -> list[float]:
    times: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(each):
            sent = limiter.acquire()
            with lock:
                times.append(sent)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sorted(times)


def test_the_limiter_never_lets_more_than_the_limit_go_within_a_window():
    limiter = RateLimiter(window=0.2, limit=3, margin=0.01)
    times = _acquire_from_threads(limiter, threads=4, each=3)
    assert len(times) == 12
    assert all(times[i + 3] - times[i] >= 0.2 for i in range(len(times) - 3))
    assert times[-1] - times[0] < 0.2 * 3 + 0.15  # and it does not dawdle: 12 sends need 3 windows


def test_the_limiter_keeps_free_what_another_client_uses():
    limiter = RateLimiter(window=0.3, limit=4, margin=0.01)
    first = limiter.acquire()
    limiter.observe(limit=4, remaining=0, sent_at=first)  # the server counts 4 where we sent 1
    second = limiter.acquire()
    assert second - first >= 0.3


def test_the_limiter_learns_the_limit_and_holds_everyone_after_a_429():
    limiter = RateLimiter(window=5.0, limit=1)
    first = limiter.acquire()
    limiter.observe(limit=3, remaining=2, sent_at=first)
    assert limiter.limit == 3
    limiter.hold(0.2)
    assert limiter.acquire() - first >= 0.2


def test_the_budget_books_requests_in_flight_and_stops_before_it_runs_out():
    budget = DailyBudget()
    budget.reserve(10)
    budget.release(10, remaining=17)
    for _ in range(3):
        budget.reserve(5)
    with pytest.raises(SyncStopped, match="17 tokens left as Pipedrive reports it, 15 of them booked"):
        budget.reserve(5)
    budget.release(5, remaining=7)
    budget.release(5, remaining=12)  # an older answer arriving late does not raise the figure
    assert budget.remaining == 7
    assert budget.used == 27 - 7


def test_without_the_header_the_budget_counts_documented_costs_against_the_setting():
    budget = DailyBudget(limit=30)
    for cost in (10, 10, 5):
        budget.reserve(cost)
        budget.release(cost, remaining=None)
    budget.reserve(1)
    budget.release(1, remaining=None, sent=False)  # refused (401/403/429): it cost nothing
    assert budget.used == 25
    with pytest.raises(SyncStopped, match="5 tokens left of PIPEDRIVE_DAILY_BUDGET=30, counted by documented costs"):
        budget.reserve(10)
    budget.reserve(5)
    budget.release(5, remaining=100)  # once the header comes, it rules
    budget.reserve(50)


def test_a_429_without_any_header_waits_one_window_then_stops(client_for, monkeypatch):
    monkeypatch.setattr("processor.pipedrive.client.BURST_WINDOW", 0.2)
    fake, client = client_for(rate_headers=False, daily_headers=False, daily_budget=10)
    fake.spend(10)
    started = time.monotonic()
    with pytest.raises(SyncStopped, match="429 again after a full burst window"):
        client.get("/api/v2/persons")
    assert time.monotonic() - started >= 0.2
    assert [r.status for r in fake.requests()] == [429, 429]


def test_a_pipedrive_that_cannot_be_reached_stops_the_sync_in_one_line(make_settings):
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(
        pipedrive_api_key=TOKEN, pipedrive_base_url=f"http://127.0.0.1:{port}", pipedrive_max_retries=2
    )
    client = PipedriveClient(settings, policy=FAST)
    tried = []
    with pytest.raises(SyncStopped) as stopped:
        client.post("/api/v2/persons", {"name": "x"}, recover=lambda: tried.append(1))
    client.close()
    message = str(stopped.value)
    assert f"cannot be reached at http://127.0.0.1:{port}" in message and "Connection refused" in message
    assert "3 tries" in message and "HTTPConnectionPool" not in message and TOKEN not in message
    assert tried == []  # nothing was sent, so nothing is looked for


@pytest.fixture
def client_for(pipedrive_fake, make_settings):
    """client_for(**fake_config) -> (fake, client) with fast retries, closed after the test."""
    clients = []

    def make(timeout: float = 5, **config):
        fake = pipedrive_fake(token=TOKEN, **config)
        settings = make_settings(
            pipedrive_api_key=TOKEN, pipedrive_base_url=fake.url, pipedrive_timeout=timeout, pipedrive_max_retries=3
        )
        client = PipedriveClient(settings, policy=FAST, limiter=RateLimiter(window=config.get("window", 2.0)))
        clients.append(client)
        return fake, client

    yield make
    for client in clients:
        client.close()


def test_5xx_is_retried_a_bounded_number_of_times(client_for):
    fake, client = client_for(error_rate=1.0)
    with pytest.raises(SyncError) as raised:
        client.get("/api/v2/persons")
    assert raised.value.retryable
    assert len(fake.requests()) == 4  # the first try and 3 retries


def test_a_4xx_fails_at_once_with_pipedrives_message(client_for):
    fake, client = client_for()
    with pytest.raises(SyncError, match="Validation failed: value") as raised:
        client.post("/api/v2/deals", {"title": "t", "value": "1"})
    assert raised.value.status == 400 and not raised.value.retryable
    assert len(fake.requests()) == 1


def test_a_burst_429_waits_for_the_reset_then_succeeds(client_for):
    fake, client = client_for(burst_limit=2, window=1.0)
    other = requests.Session()
    other.headers["x-api-token"] = TOKEN
    for _ in range(2):
        other.get(fake.url + "/api/v2/persons")  # another integration fills the window
    other.close()
    started = time.monotonic()
    assert client.get("/api/v2/persons")["success"] is True
    assert client.stats.rate_limited == 1
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in fake.requests()] == [200, 200, 429, 200]


def test_the_403_block_stops_and_is_never_retried(client_for):
    fake, client = client_for()
    fake.blocked_until = time.monotonic() + 60
    with pytest.raises(SyncStopped, match="blocked"):
        client.get("/api/v2/persons")
    assert len(fake.requests()) == 1


def test_a_daily_429_stops(client_for):
    fake, client = client_for(daily_budget=10)
    fake.spend(10)
    with pytest.raises(SyncStopped, match="budget"):
        client.get("/api/v2/persons")
    assert len(fake.requests()) == 1


def test_a_create_that_timed_out_but_committed_later_is_found_not_sent_again(client_for):
    fake, client = client_for(timeout=0.3, write_latency=0.5)
    code = fake.add_field("persons", "customer_id")

    def recover():
        listed = client.get("/api/v2/persons", {"custom_fields": code})["data"]
        return next((p for p in listed if p["custom_fields"][code] == "1"), None)

    person = client.post("/api/v2/persons", {"name": "Slow", "custom_fields": {code: "1"}}, recover=recover)
    assert person["data"]["name"] == "Slow"
    assert len(fake.persons()) == 1
    assert len(fake.writes()) == 1
