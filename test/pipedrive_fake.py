"""A fake Pipedrive API v2 for tests: a real HTTP server on 127.0.0.1, as strict as the real one.

    with FakePipedrive(FakeConfig(token="t", burst_limit=40)) as fake:
        ...  # point PIPEDRIVE_BASE_URL at fake.url
        fake.persons(), fake.deals()          # what Pipedrive holds (serialised like the API)
        fake.archive_deal(id)                 # what a salesperson's "Archive" does
        fake.add_field("deals", "Channel", "enum", ["Shop", "Phone"]), fake.option_id(code, "Shop")
        fake.add_user(...), fake.add_pipeline("Renewals", ["New", "Won"]), fake.seed("organizations", {...})
        fake.requests(), fake.writes()        # every request with method, path, query, status, body

By hand:  python test/pipedrive_fake.py --port 8765 --token x [--burst 40 --latency 0.05 ...]

What it implements (see ../shared/research/pipedrive-api.md):
- auth by `x-api-token` header or `api_token` query, else 401;
- /api/v2/persons, /api/v2/deals and /api/v2/organizations: list (cursor pages, limit <= 500,
  `custom_fields`, `updated_since`, `sort_by`, `sort_direction`, deals `status`), GET/PATCH/DELETE
  by id, POST; the deals list leaves archived deals out: /api/v2/deals/archived lists them (same
  parameters); an archived deal refuses every PATCH (403) except one that only un-archives it
  (`{"is_archived": false}`), as Pipedrive does since 2025-07-15;
  /api/v2/{persons,deals}/search (`term`, `fields`, `exact_match`, optional index lag);
  /api/v2/{person,deal}Fields (list, create with a 40-hex `field_code`, GET by code);
- strict validation: unknown keys, wrong types, missing name/title, unknown custom field codes,
  enum/set values that are not option ids of their field -> 400 ERR_SCHEMA_VALIDATION_FAILED;
  a person, organization, owner (user), pipeline or stage id that does not exist -> 400; a stage
  sets the deal's pipeline, a pipeline alone its first stage; status won/lost sets the won, lost
  and close times; unknown ids -> 404; v2 answers 200 on create; /api/v2/stages/{id},
  /api/v2/pipelines/{id} and /api/v1/users/{id} for looking ids up;
- limits: per-route token costs against a daily budget; a rolling burst window per token (and
  10 per window for search); x-ratelimit-* and x-daily-ratelimit-token-* headers on every JSON
  answer (`rate_headers` / `daily_headers` False leaves them out, as Pipedrive sometimes does);
  429 when over; a Cloudflare 403 HTML page once a client sends more than `block_after`
  requests into full windows within one window;
- faults: `error_rate` answers 500/503 (nothing done) or 524 (a write is done, then the gateway
  gives up), `drop_rate` commits a write and drops the connection unanswered, `latency` per request
  and `write_latency` on top for writes (a client that times out first leaves the write to commit).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import random
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MAX_LIMIT = 500
MAX_CUSTOM_FIELDS_PARAM = 15
WRITES = frozenset({"POST", "PATCH", "DELETE"})
BAD_JSON = "<not JSON>"  # what the log shows for a body that does not parse
FIELD_TYPES = frozenset(
    [
        "varchar",
        "varchar_auto",
        "text",
        "double",
        "monetary",
        "date",
        "daterange",
        "time",
        "timerange",
        "enum",
        "set",
        "phone",
        "address",
        "org",
        "people",
        "user",
    ]
)
SEARCHABLE_TYPES = frozenset({"address", "varchar", "text", "varchar_auto", "double", "monetary", "phone"})
COSTS = {
    ("GET", "list"): 10,
    ("POST", "list"): 5,
    ("GET", "item"): 1,
    ("PATCH", "item"): 5,
    ("DELETE", "item"): 3,
    ("GET", "search"): 20,
    ("GET", "archived"): 20,
    ("GET", "fields"): 10,
    ("POST", "fields"): 5,
    ("GET", "field"): 1,
    ("GET", "ref"): 1,
    ("GET", "v1ref"): 2,
}
CLOUDFLARE_BLOCK = (
    "<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head><body>"
    "<h1>Sorry, you have been blocked</h1><p>You are unable to access pipedrive.com</p></body></html>"
)
CLOUDFLARE_524 = "<!DOCTYPE html><html><head><title>524: A timeout occurred</title></head><body></body></html>"


@dataclass(frozen=True)
class FakeConfig:
    """How the fake account behaves; defaults are a Growth plan with an API token."""

    token: str = "test-token"
    burst_limit: int = 40
    search_burst_limit: int = 10
    window: float = 2.0
    daily_budget: int = 60_000
    latency: float = 0.0
    write_latency: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    block_after: int = 20
    block_seconds: float = 60.0
    index_lag: float = 0.0
    default_currency: str = "EUR"
    seed: int | None = None
    rate_headers: bool = True
    daily_headers: bool = True


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the fake saw it."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    body: Any = None
    dropped: bool = False


@dataclass
class Reply:
    """An answer: JSON (dict) or HTML (str) body, extra headers, or a dropped connection."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, str):
            return self.body.encode(), "text/html; charset=UTF-8"
        return json.dumps(self.body).encode(), "application/json"


class ApiError(Exception):
    """Answer with this status and Pipedrive's error body."""

    def __init__(self, status: int, error: str, code: str | None = None, info: str | None = None):
        super().__init__(error)
        self.status = status
        if code:
            self.body = {"success": False, "error": error, "code": code}
        else:
            self.body = {
                "success": False,
                "error": error,
                "error_info": info or "Please check developers.pipedrive.com",
                "data": None,
                "additional_data": None,
            }


def _not_found() -> ApiError:
    return ApiError(404, "Entity was not found", info="Object was not found.")


def _invalid(message: str) -> ApiError:
    return ApiError(400, f"Validation failed: {message}", "ERR_SCHEMA_VALIDATION_FAILED")


class Window:
    """A rolling window of `limit` events per `seconds`."""

    def __init__(self, limit: int, seconds: float):
        self.limit, self.seconds = limit, seconds
        self.times: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self.times and self.times[0] <= now - self.seconds:
            self.times.popleft()

    def full(self, now: float) -> bool:
        self._trim(now)
        return len(self.times) >= self.limit

    def add(self, now: float) -> int:
        self._trim(now)
        self.times.append(now)
        return len(self.times)

    def headers(self, now: float) -> dict[str, str]:
        self._trim(now)
        reset = math.ceil(self.times[0] + self.seconds - now) if self.times else 0
        remaining = max(0, self.limit - len(self.times))
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(reset),
        }


# ---------------------------------------------------------------------- validation


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is None:
        return False
    try:
        return bool(date.fromisoformat(value))
    except ValueError:
        return False


def _is_time(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}Z?", value) is not None


def _is_currency(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[A-Z]{3}", value) is not None


def _is_contact(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) <= {"value", "primary", "label"}
        and _is_text(value.get("value"))
        and type(value.get("primary", False)) is bool
        and _is_text(value.get("label", ""))
    )


def _is_contacts(value: Any) -> bool:
    """An array of contacts with at most one marked primary."""
    return (
        isinstance(value, list) and all(map(_is_contact, value)) and sum(c.get("primary") is True for c in value) <= 1
    )


def _is_money(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"value", "currency"}
        and _is_number(value["value"])
        and _is_currency(value["currency"])
    )


def _is_range(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: (
        isinstance(value, dict) and set(value) == {"value", "until"} and all(map(check, value.values()))
    )


def _nullable(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _list_of(check: Callable[[Any], bool], allow_empty: bool = True) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, list) and (allow_empty or bool(value)) and all(map(check, value))


def _one_of(*allowed: str) -> Callable[[Any], bool]:
    return lambda value: value in allowed


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _is_bool(value: Any) -> bool:
    return type(value) is bool


INT, NULL_INT = (_is_int, "an integer"), (_nullable(_is_int), "an integer or null")
CONTACTS = (_is_contacts, "an array of {value, primary, label} objects, at most one of them primary")
PERSON_BODY = {
    "name": (_is_name, "a non-empty string"),
    "owner_id": INT,
    "org_id": NULL_INT,
    "add_time": (_is_time, "a date-time"),
    "emails": CONTACTS,
    "phones": CONTACTS,
    "visible_to": INT,
    "label_ids": (_list_of(_is_int), "an array of integers"),
    "custom_fields": (_is_object, "an object"),
}
DEAL_BODY = {
    "title": (_is_name, "a non-empty string"),
    "owner_id": INT,
    "person_id": NULL_INT,
    "org_id": NULL_INT,
    "pipeline_id": INT,
    "stage_id": INT,
    "value": (_is_number, "a number"),
    "currency": (_is_currency, "a 3-letter currency code"),
    "status": (_one_of("open", "won", "lost"), "one of open, won, lost"),
    "probability": (_nullable(_is_number), "a number or null"),
    "visible_to": INT,
    "label_ids": (_list_of(_is_int), "an array of integers"),
    "lost_reason": (_nullable(_is_text), "a string or null"),
    "won_time": (_nullable(_is_time), "a date-time or null"),
    "lost_time": (_nullable(_is_time), "a date-time or null"),
    "close_time": (_nullable(_is_time), "a date-time or null"),
    "expected_close_date": (_nullable(_is_date), "a date (YYYY-MM-DD) or null"),
    "is_archived": (_is_bool, "a boolean"),
    "archive_time": (_nullable(_is_time), "a date-time or null"),
    "custom_fields": (_is_object, "an object"),
}
ORG_BODY = {
    "name": (_is_name, "a non-empty string"),
    "owner_id": INT,
    "add_time": (_is_time, "a date-time"),
    "visible_to": INT,
    "label_ids": (_list_of(_is_int), "an array of integers"),
    "address": (_nullable(_is_object), "an object or null"),
    "custom_fields": (_is_object, "an object"),
}
FIELD_BODY = {
    "field_name": (_is_name, "a non-empty string"),
    "field_type": (_one_of(*FIELD_TYPES), "a field type such as varchar or double"),
    "options": (_list_of(lambda o: _is_object(o) and _is_name(o.get("label"))), "an array of {label} objects"),
    "description": (_is_text, "a string"),
}
CUSTOM_VALUES = {
    "double": (_is_number, "a number"),
    "monetary": (_is_money, "an object {value, currency} (a number and a 3-letter currency code)"),
    "date": (_is_date, "a date (YYYY-MM-DD)"),
    "enum": INT,
    "set": (_list_of(_is_int, allow_empty=False), "a non-empty array of option ids"),
    "org": INT,
    "people": INT,
    "user": INT,
    "daterange": (_is_range(_is_date), "an object {value, until} of dates (YYYY-MM-DD)"),
    "timerange": (_is_range(_is_text), "an object {value, until}"),
}
TEXT_VALUE = (_is_text, "a string")


def check_body(body: Any, schema: dict, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The body if it fits the schema; raises ApiError 400 like Pipedrive v2."""
    if not isinstance(body, dict):
        raise _invalid("body: the request body must be a JSON object")
    for key in required:
        if key not in body:
            raise _invalid(f"{key}: Parameter '{key}' is required")
    for key, value in body.items():
        if key not in schema:
            raise _invalid(f"{key}: Parameter '{key}' is not allowed for this request")
        check, expected = schema[key]
        if not check(value):
            raise _invalid(f"{key}: Parameter '{key}' must be {expected}")
    return body


# ---------------------------------------------------------------------- collections


def _now() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


def _encode_cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise _invalid("cursor: Parameter 'cursor' is not a valid cursor") from None
    if not isinstance(data, dict):
        raise _invalid("cursor: Parameter 'cursor' is not a valid cursor")
    return data


@dataclass
class Collection:
    """Persons or deals: records by id plus the entity's custom fields."""

    name: str
    singular: str
    schema: dict
    required: str
    search_fields: tuple[str, ...]
    defaults: Callable[[], dict[str, Any]]
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    fields: list[dict[str, Any]] = field(default_factory=list)
    indexed_at: dict[int, float] = field(default_factory=dict)

    def custom_codes(self) -> dict[str, str]:
        return {f["field_code"]: f["field_type"] for f in self.fields if f["is_custom_field"]}

    def serialise(self, record: dict[str, Any], only: list[str] | None = None) -> dict[str, Any]:
        codes = only if only is not None else list(self.custom_codes())
        custom = {code: record["custom_fields"].get(code) for code in codes}
        return {**record, "custom_fields": custom}


def _person_defaults() -> dict[str, Any]:
    return {
        "name": None,
        "first_name": None,
        "last_name": None,
        "owner_id": 1,
        "org_id": None,
        "emails": [],
        "phones": [],
        "is_deleted": False,
        "visible_to": 3,
        "label_ids": [],
        "picture_id": None,
    }


def _org_defaults() -> dict[str, Any]:
    return {"name": None, "owner_id": 1, "is_deleted": False, "visible_to": 3, "label_ids": [], "address": None}


def _deal_defaults() -> dict[str, Any]:
    return {
        "title": None,
        "creator_user_id": 1,
        "owner_id": 1,
        "person_id": None,
        "org_id": None,
        "pipeline_id": 1,
        "stage_id": 1,
        "value": 0,
        "currency": None,
        "status": "open",
        "probability": None,
        "stage_change_time": None,
        "is_deleted": False,
        "is_archived": False,
        "archive_time": None,
        "visible_to": 3,
        "label_ids": [],
        "lost_reason": None,
        "expected_close_date": None,
        "won_time": None,
        "lost_time": None,
        "close_time": None,
        "origin": "API",
        "origin_id": None,
    }


def _builtin_fields(**kinds: str) -> list[dict[str, Any]]:
    return [
        {
            "field_name": code.capitalize(),
            "field_code": code,
            "field_type": kind,
            "options": None,
            "is_custom_field": False,
        }
        for code, kind in kinds.items()
    ]


# ---------------------------------------------------------------------- the account


class Account:
    """One Pipedrive company as the API sees it: records, fields, limits, the request log (thread-safe)."""

    def __init__(self, config: FakeConfig | None = None):
        self.config = config or FakeConfig()
        self.lock = threading.RLock()
        self.rng = random.Random(self.config.seed)
        self.collections = {
            "persons": Collection(
                "persons",
                "Person",
                PERSON_BODY,
                "name",
                ("custom_fields", "email", "notes", "phone", "name"),
                _person_defaults,
                fields=_builtin_fields(name="varchar", emails="varchar", phones="phone", org_id="org"),
            ),
            "deals": Collection(
                "deals",
                "Deal",
                DEAL_BODY,
                "title",
                ("custom_fields", "notes", "title"),
                _deal_defaults,
                fields=_builtin_fields(title="varchar", value="monetary", person_id="people"),
            ),
            "organizations": Collection(
                "organizations",
                "Organization",
                ORG_BODY,
                "name",
                ("custom_fields", "notes", "name", "address"),
                _org_defaults,
                fields=_builtin_fields(name="varchar", address="address"),
            ),
        }
        self.users: dict[int, dict[str, Any]] = {1: {"id": 1, "name": "Account Owner", "email": "owner@example.com"}}
        self.pipelines: dict[int, str] = {1: "Pipeline"}
        self.stages: dict[int, tuple[int, str]] = {
            n: (1, name) for n, name in enumerate(("Qualified", "Contact Made", "Demo", "Proposal", "Negotiation"), 1)
        }
        self.next_option = 1
        self.next_id = 1
        self.log: list[LoggedRequest] = []
        self.spent = 0
        self.blocked_until = 0.0
        self._make_windows()

    def _make_windows(self) -> None:
        cfg = self.config
        self.window = Window(cfg.burst_limit, cfg.window)
        self.search_window = Window(cfg.search_burst_limit, cfg.window)
        self.rejections = Window(cfg.block_after, cfg.window)

    # ------------------------------------------------------------------ inspection helpers for tests

    def configure(self, **changes: Any) -> None:
        """Change the config (e.g. faults, limits) while running; windows restart empty."""
        with self.lock:
            self.config = replace(self.config, **changes)
            if "seed" in changes:
                self.rng = random.Random(self.config.seed)
            self._make_windows()

    def reset_budget(self) -> None:
        """Midnight: the daily token budget is full again (and any block is lifted)."""
        with self.lock:
            self.spent, self.blocked_until = 0, 0.0

    def spend(self, tokens: int) -> None:
        """Spend tokens of today's budget, as the company's other integrations would."""
        with self.lock:
            self.spent += tokens

    def persons(self) -> list[dict[str, Any]]:
        """Non-deleted persons as the API would list them."""
        return self._visible("persons")

    def deals(self) -> list[dict[str, Any]]:
        """Non-deleted deals as the API would list them, archived ones included (`is_archived` says which)."""
        return self._visible("deals")

    def organizations(self) -> list[dict[str, Any]]:
        """Non-deleted organizations as the API would list them."""
        return self._visible("organizations")

    def archive_deal(self, deal_id: int) -> None:
        """Archive a deal, as a salesperson would in the app; raises ApiError 404 for an unknown id."""
        with self.lock:
            self._find(self.collections["deals"], deal_id).update(
                is_archived=True, archive_time=_now(), update_time=_now()
            )

    def add_user(self, name: str, email: str) -> int:
        """A user of the company (an owner_id); returns its id."""
        with self.lock:
            user_id = max(self.users) + 1
            self.users[user_id] = {"id": user_id, "name": name, "email": email}
            return user_id

    def add_pipeline(self, name: str, stages: list[str]) -> tuple[int, list[int]]:
        """A pipeline with its stages in order; returns the pipeline id and the stage ids."""
        with self.lock:
            pipeline_id = max(self.pipelines) + 1
            self.pipelines[pipeline_id] = name
            first = max(self.stages) + 1
            self.stages.update({first + n: (pipeline_id, stage) for n, stage in enumerate(stages)})
            return pipeline_id, list(range(first, first + len(stages)))

    def option_id(self, code: str, label: str) -> int:
        """The id of an enum/set option by its label; raises KeyError."""
        with self.lock:
            for coll in self.collections.values():
                for f in coll.fields:
                    if f["field_code"] == code:
                        return next(o["id"] for o in f["options"] or [] if o["label"] == label)
        raise KeyError(code)

    def _visible(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            coll = self.collections[name]
            return [json.loads(json.dumps(coll.serialise(r))) for r in coll.records.values() if not r["is_deleted"]]

    def requests(self, method: str | None = None) -> list[LoggedRequest]:
        """The request log, optionally of one method."""
        with self.lock:
            return [r for r in self.log if method is None or r.method == method]

    def writes(self) -> list[LoggedRequest]:
        """Every POST, PATCH and DELETE received, whatever its answer."""
        return [r for r in self.requests() if r.method in WRITES]

    def clear_log(self) -> None:
        with self.lock:
            self.log.clear()

    def field_code(self, entity: str, name: str) -> str:
        """The code of the custom field named `name` on 'persons' or 'deals'; raises KeyError."""
        with self.lock:
            for f in self.collections[entity].fields:
                if f["is_custom_field"] and f["field_name"] == name:
                    return f["field_code"]
        raise KeyError(name)

    def seed(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a record directly (no limits, no log), validated like a POST."""
        with self.lock:
            return self._create(self.collections[entity], body)

    def add_field(self, entity: str, name: str, field_type: str = "varchar", options: list[str] | None = None) -> str:
        """Create a custom field directly (an enum or set with option labels); returns its code."""
        body: dict[str, Any] = {"field_name": name, "field_type": field_type}
        if options is not None:
            body["options"] = [{"label": label} for label in options]
        with self.lock:
            return self._create_field(self.collections[entity], body)["field_code"]

    # ------------------------------------------------------------------ one request

    def handle(self, method: str, raw_path: str, headers: Any, raw_body: bytes) -> Reply:
        """Answer one HTTP request (called by the server thread)."""
        url = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        body = self._parse_body(raw_body)
        with self.lock:
            reply = self._answer(method, url.path, query, headers, body)
            logged_query = {k: v for k, v in query.items() if k != "api_token"}
            self.log.append(LoggedRequest(method, url.path, logged_query, reply.status, body, reply.drop))
        return reply

    @staticmethod
    def _parse_body(raw_body: bytes) -> Any:
        if not raw_body:
            return None
        try:
            return json.loads(raw_body)
        except ValueError:
            return BAD_JSON

    def _answer(self, method: str, path: str, query: dict, headers: Any, body: Any) -> Reply:
        token = headers.get("x-api-token") or query.get("api_token")
        if token != self.config.token:
            return Reply(401, {"success": False, "error": "unauthorized access", "errorCode": 401})
        try:
            route = self._route(method, path)
        except ApiError as exc:
            return Reply(exc.status, exc.body)
        now = time.monotonic()
        refused = self._admit(route, now)
        if refused is not None:
            return refused
        reply = self._run_with_faults(method, route, query, body)
        if not isinstance(reply.body, str):
            reply.headers.update(self._limit_headers(self.search_window if route[0] == "search" else self.window, now))
        return reply

    def _limit_headers(self, window: Window, now: float) -> dict[str, str]:
        """The burst window's and the daily budget's headers, as far as this account sends them."""
        headers = window.headers(now) if self.config.rate_headers else {}
        if self.config.daily_headers:
            left = max(0, self.config.daily_budget - self.spent)
            headers["x-daily-ratelimit-token-limit"] = str(self.config.daily_budget)
            headers["x-daily-ratelimit-token-remaining"] = str(left)
        return headers

    def _route(self, method: str, path: str) -> tuple:
        """(kind, collection, id-or-code, cost); raises ApiError 404/405."""
        match = re.fullmatch(r"/api/v2/(persons|deals|organizations)(?:/(search|\d+))?/?", path)
        fields = re.fullmatch(r"/api/v2/(person|deal)Fields(?:/([0-9a-z_]+))?/?", path)
        ref = re.fullmatch(r"/api/(v2/stages|v2/pipelines|v1/users)/(\d+)/?", path)
        if ref:
            coll, kind, target = ref[1].split("/")[1], "ref" if ref[1].startswith("v2") else "v1ref", int(ref[2])
        elif path.rstrip("/") == "/api/v2/deals/archived":
            coll, kind, target = self.collections["deals"], "archived", None
        elif match:
            coll = self.collections[match[1]]
            kind = "list" if match[2] is None else "search" if match[2] == "search" else "item"
            target = int(match[2]) if kind == "item" else None
        elif fields:
            coll = self.collections[fields[1] + "s"]
            kind, target = ("fields", None) if fields[2] is None else ("field", fields[2])
        else:
            raise ApiError(404, f"Unknown method {path}")
        cost = COSTS.get((method, kind))
        if cost is None:
            raise ApiError(405, f"Method {method} is not allowed for {path}")
        return kind, coll, target, cost

    def _admit(self, route: tuple, now: float) -> Reply | None:
        """Refuse with 403 (blocked) or 429 (daily budget, burst window); else count the request."""
        cfg, cost = self.config, route[3]
        if now < self.blocked_until:
            return Reply(403, CLOUDFLARE_BLOCK)
        if self.spent + cost > cfg.daily_budget:
            error = ApiError(429, "Daily token budget exceeded. Try again after the budget resets.")
            return Reply(429, error.body, self._limit_headers(self.window, now))
        windows = (self.window, self.search_window) if route[0] == "search" else (self.window,)
        full = next((w for w in windows if w.full(now)), None)
        if full is not None:
            if self.rejections.add(now) > cfg.block_after:
                self.blocked_until = now + cfg.block_seconds
                return Reply(403, CLOUDFLARE_BLOCK)
            return Reply(429, ApiError(429, "Request over limit").body, self._limit_headers(full, now))
        for w in windows:
            w.add(now)
        self.spent += cost
        return None

    def _run_with_faults(self, method: str, route: tuple, query: dict, body: Any) -> Reply:
        """Do the request; maybe answer 500/503 instead, or do it and answer 524, or do it and drop."""
        cfg, write = self.config, method in WRITES
        if cfg.error_rate and self.rng.random() < cfg.error_rate:
            status = self.rng.choice((500, 503, 524))
            if status != 524:
                return Reply(
                    status, ApiError(status, "Internal server error" if status == 500 else "Service unavailable").body
                )
            if write:
                self._dispatch(method, route, query, body)
            return Reply(524, CLOUDFLARE_524)
        reply = self._dispatch(method, route, query, body)
        if write and reply.status < 300 and cfg.drop_rate and self.rng.random() < cfg.drop_rate:
            reply.drop = True
        return reply

    def _dispatch(self, method: str, route: tuple, query: dict, body: Any) -> Reply:
        kind, coll, target, _cost = route
        try:
            if body is BAD_JSON:
                raise _invalid("body: the request body is not valid JSON")
            handler = getattr(self, f"_{method.lower()}_{kind}")
            data, extra = handler(coll, target, query, body)
        except ApiError as exc:
            return Reply(exc.status, exc.body)
        return Reply(200, {"success": True, "data": data, "additional_data": extra})

    # ------------------------------------------------------------------ routes

    def _get_ref(self, name: str, target: int, _query, _body) -> tuple[Any, Any]:
        """A stage, pipeline or (v1) user by id; 404 when there is none."""
        if name == "stages" and target in self.stages:
            pipeline_id, stage = self.stages[target]
            return {"id": target, "name": stage, "pipeline_id": pipeline_id}, None
        if name == "pipelines" and target in self.pipelines:
            return {"id": target, "name": self.pipelines[target]}, None
        if name == "users" and target in self.users:
            return dict(self.users[target]), None
        raise _not_found()

    _get_v1ref = _get_ref

    def _get_archived(self, coll: Collection, target, query: dict, body) -> tuple[Any, Any]:
        return self._get_list(coll, target, query, body, archived=True)

    def _get_list(self, coll: Collection, _target, query: dict, _body, archived: bool = False) -> tuple[Any, Any]:
        limit = self._limit(query)
        only = self._custom_fields_param(coll, query)
        sort_by = query.get("sort_by", "id")
        direction = query.get("sort_direction", "asc")
        if sort_by not in ("id", "update_time", "add_time") or direction not in ("asc", "desc"):
            raise _invalid("sort_by: Parameter 'sort_by' must be id, update_time or add_time (asc or desc)")
        records = [
            r
            for r in coll.records.values()
            if not r["is_deleted"] and r.get("is_archived", False) == archived and self._matches_filters(coll, r, query)
        ]
        records.sort(key=lambda r: (r[sort_by], r["id"]), reverse=direction == "desc")
        if "cursor" in query:
            after = _decode_cursor(query["cursor"])
            mark = (after.get("fieldValue"), after.get("id"))
            ahead = (lambda key: key > mark) if direction == "asc" else (lambda key: key < mark)
            records = [r for r in records if ahead((r[sort_by], r["id"]))]
        page = records[:limit]
        next_cursor = None
        if len(records) > limit:
            last = page[-1]
            next_cursor = _encode_cursor(
                {"field": sort_by, "fieldValue": last[sort_by], "sortDirection": direction, "id": last["id"]}
            )
        return [coll.serialise(r, only) for r in page], {"next_cursor": next_cursor}

    def _matches_filters(self, coll: Collection, record: dict, query: dict) -> bool:
        since = query.get("updated_since")
        if since is not None:
            if not _is_time(since):
                raise _invalid("updated_since: Parameter 'updated_since' must be an RFC 3339 date-time")
            if record["update_time"] < since.replace(" ", "T").rstrip("Z") + "Z":
                return False
        status = query.get("status")
        if coll.name == "deals" and status:
            return record["status"] in status.split(",")
        return True

    @staticmethod
    def _limit(query: dict, maximum: int = MAX_LIMIT) -> int:
        raw = query.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= maximum:
            raise _invalid(f"limit: Parameter 'limit' must be a whole number from 1 to {maximum}")
        return int(raw)

    @staticmethod
    def _custom_fields_param(coll: Collection, query: dict) -> list[str] | None:
        if "custom_fields" not in query:
            return None
        codes = [c for c in query["custom_fields"].split(",") if c]
        if len(codes) > MAX_CUSTOM_FIELDS_PARAM:
            raise _invalid(f"custom_fields: at most {MAX_CUSTOM_FIELDS_PARAM} custom fields may be requested")
        unknown = [c for c in codes if c not in coll.custom_codes()]
        if unknown:
            raise _invalid(f"custom_fields: unknown custom field '{unknown[0]}'")
        return codes

    def _get_item(self, coll: Collection, target: int, _query, _body) -> tuple[Any, Any]:
        return coll.serialise(self._find(coll, target)), None

    def _post_list(self, coll: Collection, _target, _query, body: Any) -> tuple[Any, Any]:
        return coll.serialise(self._create(coll, body)), None

    def _patch_item(self, coll: Collection, target: int, _query, body: Any) -> tuple[Any, Any]:
        record = self._find(coll, target)
        check_body(body, coll.schema)
        if record.get("is_archived") and body != {"is_archived": False}:
            raise ApiError(403, "Archived deals cannot be edited. Unarchive the deal first.")
        updated = self._merge(coll, record, body)
        coll.records[target] = updated
        coll.indexed_at[target] = time.monotonic()
        return coll.serialise(updated), None

    def _delete_item(self, coll: Collection, target: int, _query, _body) -> tuple[Any, Any]:
        record = self._find(coll, target)
        record.update(is_deleted=True, update_time=_now())
        return {"id": target}, None

    def _find(self, coll: Collection, target: int) -> dict[str, Any]:
        record = coll.records.get(target)
        if record is None or record["is_deleted"]:
            raise _not_found()
        return record

    def _create(self, coll: Collection, body: Any) -> dict[str, Any]:
        check_body(body, coll.schema, required=(coll.required,))
        record = {"id": self.next_id, **coll.defaults(), "add_time": _now(), "custom_fields": {}}
        if coll.name == "deals":
            record["currency"] = self.config.default_currency
        record = self._merge(coll, record, body)
        self.next_id += 1
        coll.records[record["id"]] = record
        coll.indexed_at[record["id"]] = time.monotonic()
        return record

    def _merge(self, coll: Collection, record: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """The record with the body applied; raises ApiError for bad custom fields or references."""
        custom = dict(record["custom_fields"])
        for code, value in (body.get("custom_fields") or {}).items():
            self._check_custom(coll, code, value)
            custom[code] = value
        merged = {**record, **{k: v for k, v in body.items() if k != "custom_fields"}, "custom_fields": custom}
        if "name" in body and coll.name == "persons":
            first, _, last = body["name"].strip().partition(" ")
            merged.update(first_name=first, last_name=last or None)
        for key in ("emails", "phones"):
            if key in body:
                merged[key] = _contacts(body[key])
        self._check_references(merged, body)
        if coll.name == "deals":
            self._place_in_pipeline(merged, body)
            self._check_status_rules(merged, body)
            self._set_times(record, merged, body)
        merged["update_time"] = _now()
        return merged

    def _check_references(self, merged: dict[str, Any], body: dict[str, Any]) -> None:
        """Ids in the body must name what exists: person, organization, owner, pipeline, stage (else 400)."""
        exists = {
            "person_id": ("Person", lambda i: self._alive("persons", i)),
            "org_id": ("Organization", lambda i: self._alive("organizations", i)),
            "owner_id": ("User", lambda i: i in self.users),
            "pipeline_id": ("Pipeline", lambda i: i in self.pipelines),
            "stage_id": ("Stage", lambda i: i in self.stages),
        }
        for key, (what, found) in exists.items():
            if body.get(key) is not None and not found(merged[key]):
                raise ApiError(400, f"{what} with id {merged[key]} was not found")

    def _alive(self, name: str, record_id: int) -> bool:
        record = self.collections[name].records.get(record_id)
        return record is not None and not record["is_deleted"]

    def _place_in_pipeline(self, deal: dict[str, Any], body: dict[str, Any]) -> None:
        """A stage sets its pipeline (a pipeline_id beside it is ignored); a pipeline alone, its first stage."""
        if body.get("stage_id") is not None:
            deal["pipeline_id"] = self.stages[deal["stage_id"]][0]
        elif body.get("pipeline_id") is not None and self.stages[deal["stage_id"]][0] != deal["pipeline_id"]:
            deal["stage_id"] = min(s for s, (p, _) in self.stages.items() if p == deal["pipeline_id"])

    @staticmethod
    def _set_times(before: dict[str, Any], deal: dict[str, Any], body: dict[str, Any]) -> None:
        """What Pipedrive sets itself: won/lost/close times when the status changes, the archive time."""
        now = _now()
        if "status" in body and body["status"] != before.get("status"):
            won, lost = deal["status"] == "won", deal["status"] == "lost"
            deal.update(won_time=now if won else None, lost_time=now if lost else None)
            deal.update(close_time=now if won or lost else None)
            if not lost:
                deal["lost_reason"] = None
        if "is_archived" in body and "archive_time" not in body:
            deal["archive_time"] = now if body["is_archived"] else None

    @staticmethod
    def _check_status_rules(deal: dict[str, Any], body: dict[str, Any]) -> None:
        rules = {"lost_reason": ("lost",), "lost_time": ("lost",), "won_time": ("won",), "close_time": ("won", "lost")}
        for key, statuses in rules.items():
            if body.get(key) is not None and deal["status"] not in statuses:
                raise _invalid(f"{key}: Parameter '{key}' is only allowed when status is {' or '.join(statuses)}")

    def _check_custom(self, coll: Collection, code: str, value: Any) -> None:
        field_type = coll.custom_codes().get(code)
        if field_type is None:
            raise _invalid(f"custom_fields.{code}: unknown custom field '{code}'")
        check, expected = CUSTOM_VALUES.get(field_type, TEXT_VALUE)
        if value is not None and not check(value):
            raise _invalid(f"custom_fields.{code}: the value must be {expected}")
        if field_type in ("enum", "set") and value is not None:
            options = {o["id"] for f in coll.fields if f["field_code"] == code for o in f["options"] or []}
            unknown = [v for v in (value if field_type == "set" else [value]) if v not in options]
            if unknown:
                raise _invalid(f"custom_fields.{code}: option {unknown[0]} does not exist")
        if field_type in ("org", "people", "user") and value is not None:
            found = self._alive("organizations" if field_type == "org" else "persons", value)
            if not (value in self.users if field_type == "user" else found):
                raise ApiError(400, f"custom_fields.{code}: no {field_type} with id {value}")

    def _get_fields(self, coll: Collection, _target, query: dict, _body) -> tuple[Any, Any]:
        limit = self._limit(query)
        start = int(_decode_cursor(query["cursor"]).get("offset", 0)) if "cursor" in query else 0
        page = coll.fields[start : start + limit]
        more = start + limit < len(coll.fields)
        return [dict(f) for f in page], {"next_cursor": _encode_cursor({"offset": start + limit}) if more else None}

    def _post_fields(self, coll: Collection, _target, _query, body: Any) -> tuple[Any, Any]:
        check_body(body, FIELD_BODY, required=("field_name", "field_type"))
        return dict(self._create_field(coll, body)), None

    def _create_field(self, coll: Collection, body: dict[str, Any]) -> dict[str, Any]:
        options = None
        if body.get("options") is not None:
            options = [{"id": self.next_option + n, "label": o["label"]} for n, o in enumerate(body["options"])]
            self.next_option += len(options)
        new = {
            "field_name": body["field_name"],
            "field_code": secrets.token_hex(20),
            "field_type": body["field_type"],
            "options": options,
            "description": body.get("description"),
            "is_custom_field": True,
        }
        coll.fields.append(new)
        return new

    def _get_field(self, coll: Collection, target: str, _query, _body) -> tuple[Any, Any]:
        found = next((f for f in coll.fields if f["field_code"] == target), None)
        if found is None:
            raise ApiError(404, "Field was not found")
        return dict(found), None

    def _get_search(self, coll: Collection, _target, query: dict, _body) -> tuple[Any, Any]:
        term = query.get("term", "")
        exact = query.get("exact_match", "false")
        if exact not in ("true", "false"):
            raise _invalid("exact_match: Parameter 'exact_match' must be a boolean")
        if len(term) < (1 if exact == "true" else 2):
            raise _invalid("term: Parameter 'term' must be at least 2 characters (1 with exact_match)")
        fields = [f for f in query.get("fields", ",".join(coll.search_fields)).split(",") if f]
        if not fields or not set(fields) <= set(coll.search_fields):
            raise _invalid(f"fields: Parameter 'fields' must be a subset of {', '.join(coll.search_fields)}")
        limit = self._limit(query)
        start = int(_decode_cursor(query["cursor"]).get("offset", 0)) if "cursor" in query else 0
        items = self._search_items(coll, term, exact == "true", fields)
        more = start + limit < len(items)
        extra = {"next_cursor": _encode_cursor({"offset": start + limit}) if more else None}
        return {"items": items[start : start + limit]}, extra

    def _search_items(self, coll: Collection, term: str, exact: bool, fields: list[str]) -> list[dict[str, Any]]:
        visible_before = time.monotonic() - self.config.index_lag
        wanted = term.casefold()
        items = []
        for record in coll.records.values():
            if record["is_deleted"] or coll.indexed_at[record["id"]] > visible_before:
                continue
            values = {name: self._searchable(coll, record, name) for name in fields}
            matched = {
                name: [v for v in found if (v.casefold() == wanted if exact else wanted in v.casefold())]
                for name, found in values.items()
            }
            if any(matched.values()):
                score = 1.0 if exact else 0.5
                items.append(
                    {"result_score": score, "item": self._search_item(coll, record, matched.get("custom_fields", []))}
                )
        return items

    @staticmethod
    def _searchable(coll: Collection, record: dict[str, Any], name: str) -> list[str]:
        if name == "custom_fields":
            types = coll.custom_codes()
            values = [v for code, v in record["custom_fields"].items() if types.get(code) in SEARCHABLE_TYPES]
            return [_search_text(v) for v in values if v is not None]
        if name in ("email", "phone"):
            return [c["value"] for c in record[name + "s"]]
        if name == "notes":
            return []
        return [record[name]]

    def _search_item(self, coll: Collection, record: dict[str, Any], custom: list[str]) -> dict[str, Any]:
        common = {"id": record["id"], "visible_to": record["visible_to"], "owner": {"id": record["owner_id"]}}
        common.update(organization=None, custom_fields=custom, notes=[])
        if coll.name == "persons":
            contacts = {
                "phones": [c["value"] for c in record["phones"]],
                "emails": [c["value"] for c in record["emails"]],
            }
            return {"type": "person", "name": record["name"], **contacts, **common}
        person = self.collections["persons"].records.get(record["person_id"] or 0)
        return {
            "type": "deal",
            "title": record["title"],
            "value": record["value"],
            "currency": record["currency"],
            "status": record["status"],
            "stage": {"id": record["stage_id"], "name": "Qualified"},
            "person": {"id": person["id"], "name": person["name"]} if person else None,
            "is_archived": record["is_archived"],
            **common,
        }


def _contacts(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """E-mails or phones as Pipedrive keeps them: label `work` unless given, exactly one primary (the first)."""
    stored = [{"value": c["value"], "primary": c.get("primary", False), "label": c.get("label", "work")} for c in items]
    if stored and not any(c["primary"] for c in stored):
        stored[0]["primary"] = True
    return stored


def _search_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return _search_text(value.get("value"))
    return str(value)


# ---------------------------------------------------------------------- the server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body go out at once

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PATCH = do_DELETE = do_PUT = do_GET

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        fake = self.server.fake
        time.sleep(fake.config.latency + (fake.config.write_latency if self.command in WRITES else 0.0))
        reply = fake.handle(self.command, self.path, self.headers, raw)
        if reply.drop:
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        data, content_type = reply.encode()
        with suppress(OSError):
            self.send_response(reply.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakePipedrive):
        self.fake = fake
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hung up is not our problem


class FakePipedrive(Account):
    """The account behind a real HTTP server on 127.0.0.1 (random port unless given)."""

    def __init__(self, config: FakeConfig | None = None, port: int = 0):
        super().__init__(config)
        self._server = _Server(("127.0.0.1", port), self)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakePipedrive:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakePipedrive:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve a fake account until Ctrl-C."""
    parser = argparse.ArgumentParser(description="A fake Pipedrive API v2 on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default=FakeConfig.token)
    parser.add_argument("--burst", type=int, default=FakeConfig.burst_limit, help="requests per window")
    parser.add_argument("--window", type=float, default=FakeConfig.window, help="burst window in seconds")
    parser.add_argument("--budget", type=int, default=FakeConfig.daily_budget, help="daily token budget")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 500/503/524")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of writes committed then dropped")
    parser.add_argument("--index-lag", type=float, default=0.0, help="seconds before a write is searchable")
    args = parser.parse_args(argv)
    config = FakeConfig(
        token=args.token,
        burst_limit=args.burst,
        window=args.window,
        daily_budget=args.budget,
        latency=args.latency,
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        index_lag=args.index_lag,
    )
    with FakePipedrive(config, port=args.port) as fake:
        print(f"fake Pipedrive on {fake.url} (Ctrl-C stops it)", flush=True)
        with suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
