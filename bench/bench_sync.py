"""Benchmark the Pipedrive sync against the fake: requests sent, and time against what the burst limit allows.

    python bench/bench_sync.py                                   # 10,000 deals of 2,000 customers
    python bench/bench_sync.py --deals 1000 --customers 200      # a quicker look

The fake runs in this process on a loopback port with the given burst limit, window and latency
(defaults: 40 requests per 2 s, 50 ms, i.e. a Growth plan with an API token). Three runs:
a first sync into an empty account, a second one with nothing changed, and a third after
`--changed` deal values changed. For each: requests by method against the goal (one write per
created or changed record, one list page per 500 existing records, one page of archived deals
(none here), the field look-ups), and the elapsed time against the least the rolling window
allows for that many requests.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "test")]

from pipedrive_fake import FakeConfig, FakePipedrive  # noqa: E402

from processor.config import Settings  # noqa: E402
from processor.pipedrive.client import PipedriveClient, RateLimiter  # noqa: E402
from processor.pipedrive.sync import sync_deals  # noqa: E402

TOKEN = "bench-token"


def make_rows(deals: int, customers: int) -> list[dict]:
    """A deals view: orders spread evenly over customers, values with cents, some with the bonus."""
    rows = []
    for order_id in range(1, deals + 1):
        customer_id = (order_id - 1) % customers + 1
        value = Decimal(order_id % 5000) + Decimal("0.20") * (order_id % 3)
        rows.append(
            {
                "order_id": order_id,
                "customer_id": customer_id,
                "first_name": f"First{customer_id}",
                "last_name": f"Last{customer_id}",
                "title": f"Last{customer_id} First{customer_id}",
                "value": value,
                "currency": "EUR",
            }
        )
    return rows


def least_time(requests: int, burst: int, window: float) -> float:
    """Seconds from the first request to the last that a rolling window of `burst` per `window` allows."""
    return window * ((requests - 1) // burst)


def measure(fake: FakePipedrive, settings: Settings, rows: list[dict], args: argparse.Namespace, goal: dict) -> dict:
    """One sync with a fresh client, once the previous run has left the burst window; what the fake saw."""
    time.sleep(args.window)
    fake.clear_log()
    client = PipedriveClient(settings, limiter=RateLimiter(window=args.window))
    try:
        report = sync_deals(settings, rows, client=client)
    finally:
        client.close()
    seen = fake.requests()
    by_method = Counter(r.method for r in seen)
    total = len(seen)
    least = least_time(total, args.burst, args.window)
    return {
        "requests": dict(sorted(by_method.items())),
        "total": total,
        "goal": goal,
        "goal_total": sum(goal.values()),
        "http_429": sum(r.status == 429 for r in seen),
        "http_403": sum(r.status == 403 for r in seen),
        "elapsed_s": round(report.elapsed, 1),
        "least_s": round(least, 1),
        "ratio": round(report.elapsed / least, 3) if least else None,
        "exit_code": report.exit_code,
        "report": report.lines(),
    }


def pages(existing: int) -> int:
    return max(1, math.ceil(existing / 500))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--changed", type=int, default=100, help="deal values changed before the third run")
    parser.add_argument("--burst", type=int, default=40, help="requests per window")
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake adds to every request")
    parser.add_argument("--workers", type=int, default=4, help="PARALLEL_PROCESS_NUMBER")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    rows = make_rows(args.deals, args.customers)
    config = FakeConfig(
        token=TOKEN, burst_limit=args.burst, window=args.window, latency=args.latency, daily_budget=10**9
    )
    results = {"args": {k: str(v) for k, v in vars(args).items()}}
    with FakePipedrive(config) as fake:
        settings = Settings(pipedrive_api_key=TOKEN, pipedrive_base_url=fake.url, parallel_process_number=args.workers)
        reads = {"GET": 2 + 3}  # field look-ups, and one (empty) list page each: persons, deals, archived deals
        first_goal = {**reads, "POST": 2 + args.customers + args.deals}
        results["first"] = measure(fake, settings, rows, args, first_goal)
        listing = {"GET": 2 + pages(args.customers) + pages(args.deals) + pages(0)}  # no deal is archived
        results["second"] = measure(fake, settings, rows, args, listing)
        for row in rows[: args.changed]:
            row["value"] += Decimal("1.00")
        results["changed"] = measure(fake, settings, rows, args, {**listing, "PATCH": args.changed})
    print(json.dumps(results, indent=2, ensure_ascii=False))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
