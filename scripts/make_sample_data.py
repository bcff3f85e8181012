"""Write the synthetic customers / orders / payments dataset (fixed seed).

    python scripts/make_sample_data.py                      # the bundled sample, processor/sample_data/
    python scripts/make_sample_data.py OUT --customers 100000 --orders 1000000

Same schema as the jaffle-shop seed files. Besides random rows, every dataset holds the cases
that break naive code, each on a known id so tests can name them:

    order 1   completed, one payment of exactly the threshold (2000): no bonus
    order 2   completed, one payment just above it (2001): bonus
    order 3   shipped, one payment of 5000: no bonus (status)
    order 4   completed, three payments (2500, 100, 0): bonus on the first only; a zero amount
    order 5   placed, no payment at all
    order 6   its customer does not exist (orphan order)
    payment of order 999999999 (no such order): orphan payment
    customer 1  O'Brien, customer 2  Zoë Łukasiewicz-Müller, customer 3  José D'Ángelo
    the last customer has no orders
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "processor" / "sample_data"
STATUSES = ("placed", "shipped", "completed", "return_pending", "returned")
METHODS = ("credit_card", "coupon", "bank_transfer", "gift_card")
FIRST = (
    "Michael",
    "Shawn",
    "Kathleen",
    "Jimmy",
    "Katherine",
    "Sarah",
    "Martin",
    "Frank",
    "Jennifer",
    "Henry",
    "Zoë",
    "José",
    "Siobhán",
    "Björn",
    "Chloé",
    "Nuño",
    "Ana María",
    "Kai",
)
LAST = ("P.", "M.", "C.", "R.", "Smith", "O'Neill", "Müller", "Ñúñez", "D'Arcy", "Nguyen", "Kowalski", "Øster")
ORPHAN_ORDER_ID = 999_999_999


def write_dataset(folder: Path, customers: int = 100, orders: int = 120, seed: int = 20240101) -> None:
    """Write raw_customers.csv, raw_orders.csv and raw_payments.csv into `folder`."""
    if customers < 4 or orders < 7:
        raise ValueError("need at least 4 customers and 7 orders for the named cases")
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    missing_customer = customers + 1
    start = date(2018, 1, 1)

    customer_rows = [(1, "Aoife", "O'Brien"), (2, "Zoë", "Łukasiewicz-Müller"), (3, "José", "D'Ángelo")]
    customer_rows += [(i, rng.choice(FIRST), rng.choice(LAST)) for i in range(4, customers + 1)]

    order_rows = [
        (1, 1, start, "completed"),
        (2, 2, start + timedelta(days=1), "completed"),
        (3, 3, start + timedelta(days=2), "shipped"),
        (4, 1, start + timedelta(days=3), "completed"),
        (5, 2, start + timedelta(days=4), "placed"),
        (6, missing_customer, start + timedelta(days=5), "completed"),
    ]
    with_orders = customers - 1  # the last customer never orders
    for order_id in range(7, orders + 1):
        day = start + timedelta(days=rng.randrange(900))
        order_rows.append((order_id, rng.randint(1, with_orders), day, rng.choice(STATUSES)))

    payment_rows = [(1, 2000), (2, 2001), (3, 5000), (4, 2500), (4, 100), (4, 0), (6, 1500), (ORPHAN_ORDER_ID, 700)]
    for order_id in range(7, orders + 1):
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            payment_rows.append((order_id, _amount(rng)))
    payments = [(i, order_id, rng.choice(METHODS), amount) for i, (order_id, amount) in enumerate(payment_rows, 1)]

    _write(folder / "raw_customers.csv", ("id", "first_name", "last_name"), customer_rows)
    _write(
        folder / "raw_orders.csv",
        ("id", "user_id", "order_date", "status"),
        [(i, u, d.isoformat(), s) for i, u, d, s in order_rows],
    )
    _write(folder / "raw_payments.csv", ("id", "order_id", "payment_method", "amount"), payments)


def _amount(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.05:
        return 0
    if roll < 0.75:
        return rng.randrange(100, 2000)
    return rng.randrange(1999, 3500)  # straddles the threshold, 2000 itself included


def _write(path: Path, header: tuple[str, ...], rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, default=BUNDLED)
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--orders", type=int, default=120)
    parser.add_argument("--seed", type=int, default=20240101)
    args = parser.parse_args()
    write_dataset(args.folder, args.customers, args.orders, args.seed)
    print(f"wrote {args.folder}")


if __name__ == "__main__":
    main()
