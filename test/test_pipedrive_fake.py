"""The fake Pipedrive behaves like the facts file says the real one does (checked over real HTTP)."""

from __future__ import annotations

import re
import time

import pytest
import requests

TOKEN = "fake-token"


@pytest.fixture
def api(pipedrive_fake):
    """api(**config) -> (fake, session with the token)."""
    sessions = []

    def make(**config):
        fake = pipedrive_fake(token=TOKEN, **config)
        session = requests.Session()
        session.headers["x-api-token"] = TOKEN
        sessions.append(session)
        return fake, session

    yield make
    for session in sessions:
        session.close()


def test_token_in_header_or_query_else_401(api):
    fake, session = api()
    assert session.get(fake.url + "/api/v2/persons").status_code == 200
    assert requests.get(fake.url + "/api/v2/persons", params={"api_token": TOKEN}).status_code == 200
    refused = requests.get(fake.url + "/api/v2/persons", headers={"x-api-token": "wrong"})
    assert refused.status_code == 401
    assert refused.json() == {"success": False, "error": "unauthorized access", "errorCode": 401}
    assert all("api_token" not in r.query for r in fake.requests())


def test_create_get_patch_delete_person(api):
    fake, session = api()
    created = session.post(fake.url + "/api/v2/persons", json={"name": "Zoë Łukasiewicz-Müller"})
    assert created.status_code == 200
    person = created.json()["data"]
    assert (person["first_name"], person["last_name"]) == ("Zoë", "Łukasiewicz-Müller")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", person["add_time"])
    url = f"{fake.url}/api/v2/persons/{person['id']}"
    assert session.patch(url, json={"name": "Zoë Ł"}).json()["data"]["name"] == "Zoë Ł"
    assert session.get(url).json()["data"]["name"] == "Zoë Ł"
    assert session.delete(url).json()["data"] == {"id": person["id"]}
    assert session.get(url).status_code == 404
    assert fake.persons() == []


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("deals", {"title": "t", "add_time": "2024-01-01 00:00:00"}, "Parameter 'add_time' is not allowed"),
        ("deals", {"title": "t", "value": "12.5"}, "Parameter 'value' must be a number"),
        ("deals", {"title": "t", "value": True}, "Parameter 'value' must be a number"),
        ("deals", {"title": "t", "currency": "euro"}, "Parameter 'currency' must be a 3-letter"),
        ("deals", {"title": "t", "person_id": "1"}, "Parameter 'person_id' must be an integer"),
        ("deals", {"value": 1}, "Parameter 'title' is required"),
        ("deals", {"title": "t", "lost_reason": "price"}, "only allowed when status is lost"),
        ("persons", {"name": ""}, "Parameter 'name' must be a non-empty string"),
        ("persons", {"name": "n", "custom_fields": {"0" * 40: "1"}}, "unknown custom field"),
        ("persons", {"name": "n", "email": "a@b.c"}, "Parameter 'email' is not allowed"),
        ("persons", {"name": "n", "emails": [{"value": "a@b.c", "primary": True}, {"value": "d@e.f", "primary": True}]},
         "at most one of them primary"),
        ("deals", {"title": "t", "expected_close_date": "2024-02-30"}, "Parameter 'expected_close_date' must be a date"),
    ],
    ids=["unknown-key", "string-number", "bool-number", "bad-currency", "string-id", "no-title", "status-rule",
         "empty-name", "unknown-custom-field", "v1-email-key", "two-primaries", "no-such-date"],
)  # fmt: skip
def test_strict_validation_answers_400_with_pipedrives_shape(api, path, body, message):
    fake, session = api()
    answer = session.post(f"{fake.url}/api/v2/{path}", json=body)
    assert answer.status_code == 400
    assert answer.json()["code"] == "ERR_SCHEMA_VALIDATION_FAILED"
    assert answer.json()["success"] is False
    assert message in answer.json()["error"]
    assert fake.persons() == [] and fake.deals() == []


def test_unknown_ids_and_persons_answer_404_or_400(api):
    fake, session = api()
    missing = session.get(fake.url + "/api/v2/deals/99")
    assert missing.status_code == 404
    assert missing.json() == {
        "success": False,
        "error": "Entity was not found",
        "error_info": "Object was not found.",
        "data": None,
        "additional_data": None,
    }
    assert session.patch(fake.url + "/api/v2/deals/99", json={"title": "x"}).json()["error"] == "Entity was not found"
    assert session.post(fake.url + "/api/v2/deals", json={"title": "x", "person_id": 42}).status_code == 400


def test_custom_fields_have_40_hex_codes_and_typed_values(api):
    fake, session = api()
    field = session.post(fake.url + "/api/v2/dealFields", json={"field_name": "order_id", "field_type": "varchar"})
    code = field.json()["data"]["field_code"]
    assert re.fullmatch(r"[0-9a-f]{40}", code)
    listed = session.get(fake.url + "/api/v2/dealFields").json()["data"]
    assert [f["field_code"] for f in listed if f["is_custom_field"]] == [code]
    wrong = session.post(fake.url + "/api/v2/deals", json={"title": "t", "custom_fields": {code: 7}})
    assert wrong.status_code == 400
    deal = session.post(fake.url + "/api/v2/deals", json={"title": "t", "value": 2401.2, "custom_fields": {code: "7"}})
    assert deal.json()["data"]["custom_fields"] == {code: "7"}
    assert fake.deals()[0]["value"] == 2401.2
    assert (
        session.post(fake.url + "/api/v2/dealFields", json={"field_name": "x", "field_type": "nope"}).status_code == 400
    )


@pytest.mark.parametrize(
    ("field_type", "good", "bad"),
    [
        ("monetary", {"value": 12.5, "currency": "EUR"}, [12.5, {"value": 12.5}, {"value": "12.5", "currency": "EUR"},
                                                          {"value": 1, "currency": "EUR", "x": 1}]),
        ("daterange", {"value": "2024-01-01", "until": "2024-01-31"}, [{"value": "2024-01-01"}, "2024-01-01",
                                                                        {"value": "2024-01-01", "until": "soon"}]),
        ("date", "2024-02-29", ["2024-02-30", "01.02.2024", 20240101]),
        ("double", 1.5, ["1.5", True]),
    ],
)  # fmt: skip
def test_custom_field_values_must_have_their_types_shape(api, field_type, good, bad):
    fake, session = api()
    code = fake.add_field("deals", "Extra", field_type)
    for value in bad:
        answer = session.post(fake.url + "/api/v2/deals", json={"title": "t", "custom_fields": {code: value}})
        assert (answer.status_code, answer.json()["code"]) == (400, "ERR_SCHEMA_VALIDATION_FAILED"), value
    answer = session.post(fake.url + "/api/v2/deals", json={"title": "t", "custom_fields": {code: good}})
    assert answer.json()["data"]["custom_fields"] == {code: good}


def test_cursor_pages_cover_everything_once_and_limit_is_500(api):
    fake, session = api()
    for n in range(7):
        fake.seed("persons", {"name": f"P {n}"})
    seen, params = [], {"limit": 3}
    while True:
        body = session.get(fake.url + "/api/v2/persons", params=params).json()
        seen += [p["id"] for p in body["data"]]
        if body["additional_data"]["next_cursor"] is None:
            break
        params["cursor"] = body["additional_data"]["next_cursor"]
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 7
    desc = session.get(fake.url + "/api/v2/persons", params={"limit": 5, "sort_direction": "desc"}).json()
    rest = session.get(
        fake.url + "/api/v2/persons",
        params={"sort_direction": "desc", "cursor": desc["additional_data"]["next_cursor"]},
    ).json()
    assert [p["id"] for p in desc["data"] + rest["data"]] == sorted(seen, reverse=True)
    assert session.get(fake.url + "/api/v2/persons", params={"limit": 501}).status_code == 400


def test_archived_deals_are_listed_apart_in_cursor_pages_at_20_tokens(api):
    fake, session = api(daily_budget=1000)
    code = fake.add_field("deals", "order_id")
    ids = [fake.seed("deals", {"title": f"D {n}", "custom_fields": {code: str(n)}})["id"] for n in range(6)]
    for deal_id in ids[1:]:
        fake.archive_deal(deal_id)
    assert [d["id"] for d in session.get(fake.url + "/api/v2/deals").json()["data"]] == ids[:1]
    seen, params = [], {"limit": 2, "custom_fields": code}
    while True:
        answer = session.get(fake.url + "/api/v2/deals/archived", params=params)
        body = answer.json()
        seen += [(d["id"], d["is_archived"], d["custom_fields"]) for d in body["data"]]
        if body["additional_data"]["next_cursor"] is None:
            break
        params["cursor"] = body["additional_data"]["next_cursor"]
    assert seen == [(deal_id, True, {code: str(n)}) for n, deal_id in enumerate(ids) if n]
    assert answer.headers["x-daily-ratelimit-token-remaining"] == str(1000 - 10 - 3 * 20)
    assert session.get(fake.url + "/api/v2/deals/archived", params={"limit": 501}).status_code == 400
    assert session.get(fake.url + "/api/v2/persons/archived").status_code == 404
    assert len(fake.deals()) == 6


@pytest.mark.parametrize(
    "body",
    [{"value": 12.5}, {"is_archived": False, "value": 12.5}, {"is_archived": True}, {}],
    ids=["a-value", "unarchive-and-a-value", "archive-again", "nothing"],
)
def test_an_archived_deal_refuses_every_patch_but_one_that_only_unarchives(api, body):
    fake, session = api()
    deal = fake.seed("deals", {"title": "Kept", "value": 5})
    fake.archive_deal(deal["id"])
    url = f"{fake.url}/api/v2/deals/{deal['id']}"
    refused = session.patch(url, json=body)
    assert refused.status_code == 403
    assert refused.json()["success"] is False and "Archived deals cannot be edited" in refused.json()["error"]
    assert [(d["value"], d["is_archived"]) for d in fake.deals()] == [(5, True)]
    assert session.patch(url, json={"is_archived": False}).status_code == 200
    assert session.patch(url, json={"value": 12.5}).status_code == 200
    assert [(d["value"], d["is_archived"], d["archive_time"]) for d in fake.deals()] == [(12.5, False, None)]
    assert session.patch(url, json={"is_archived": True}).status_code == 200  # archiving an open deal is an edit
    assert fake.deals()[0]["is_archived"] and fake.deals()[0]["archive_time"]
    assert session.delete(url).status_code == 200  # deleting is not editing


def test_custom_fields_param_and_updated_since_filter_the_list(api):
    fake, session = api()
    first, second = fake.add_field("persons", "customer_id"), fake.add_field("persons", "other")
    fake.seed("persons", {"name": "A", "custom_fields": {first: "1", second: "x"}})
    listed = session.get(fake.url + "/api/v2/persons", params={"custom_fields": first}).json()["data"]
    assert listed[0]["custom_fields"] == {first: "1"}
    assert session.get(fake.url + "/api/v2/persons", params={"custom_fields": "f" * 40}).status_code == 400
    future = session.get(fake.url + "/api/v2/persons", params={"updated_since": "2999-01-01T00:00:00Z"})
    assert future.json()["data"] == []
    past = session.get(fake.url + "/api/v2/persons", params={"updated_since": "2000-01-01T00:00:00Z"})
    assert len(past.json()["data"]) == 1


def test_search_matches_custom_fields_exactly_ignoring_case_after_the_index_lag(api):
    fake, session = api(index_lag=0.3)
    code = fake.add_field("persons", "customer_id")
    fake.seed("persons", {"name": "Ann", "custom_fields": {code: "AB12"}})
    fake.seed("persons", {"name": "Bob", "custom_fields": {code: "AB123"}})
    params = {"term": "ab12", "fields": "custom_fields", "exact_match": "true"}
    assert session.get(fake.url + "/api/v2/persons/search", params=params).json()["data"]["items"] == []
    time.sleep(0.35)
    items = session.get(fake.url + "/api/v2/persons/search", params=params).json()["data"]["items"]
    assert [(i["item"]["name"], i["item"]["custom_fields"]) for i in items] == [("Ann", ["AB12"])]
    loose = session.get(fake.url + "/api/v2/persons/search", params={**params, "exact_match": "false"})
    assert len(loose.json()["data"]["items"]) == 2
    assert session.get(fake.url + "/api/v2/persons/search", params={"term": "a"}).status_code == 400
    assert session.get(fake.url + "/api/v2/deals/search", params={"term": "ab", "fields": "name"}).status_code == 400


def test_every_json_answer_carries_the_rate_limit_headers(api):
    fake, session = api(daily_budget=1000)
    answer = session.get(fake.url + "/api/v2/persons")
    assert answer.headers["x-ratelimit-limit"] == "1000"
    assert answer.headers["x-ratelimit-remaining"] == "999"
    assert answer.headers["x-daily-ratelimit-token-limit"] == "1000"
    assert answer.headers["x-daily-ratelimit-token-remaining"] == "990"
    assert session.get(fake.url + "/api/v2/persons/1").headers["x-daily-ratelimit-token-remaining"] == "989"


def test_burst_window_answers_429_then_blocks_a_client_that_keeps_sending(api):
    fake, session = api(burst_limit=3, window=1.0, block_after=4, block_seconds=30)
    statuses = [session.get(fake.url + "/api/v2/persons").status_code for _ in range(9)]
    assert statuses == [200, 200, 200, 429, 429, 429, 429, 403, 403]
    limited = fake.requests()[3]
    assert limited.status == 429
    blocked = session.get(fake.url + "/api/v2/persons")
    assert blocked.status_code == 403 and "text/html" in blocked.headers["Content-Type"]
    assert "x-ratelimit-remaining" not in blocked.headers


def test_burst_window_frees_slots_as_it_rolls(api):
    fake, session = api(burst_limit=2, window=0.3)
    first = [session.get(fake.url + "/api/v2/persons") for _ in range(3)]
    assert [a.status_code for a in first] == [200, 200, 429]
    assert first[2].headers["x-ratelimit-remaining"] == "0" and first[2].headers["x-ratelimit-reset"] == "1"
    time.sleep(0.35)
    assert session.get(fake.url + "/api/v2/persons").status_code == 200


def test_search_has_its_own_smaller_window(api):
    fake, session = api(search_burst_limit=2, window=5.0)
    params = {"term": "ab"}
    statuses = [session.get(fake.url + "/api/v2/persons/search", params=params).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert session.get(fake.url + "/api/v2/persons").status_code == 200


def test_daily_budget_answers_429_until_it_resets(api):
    fake, session = api(daily_budget=25)
    statuses = [session.get(fake.url + "/api/v2/deals").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert session.get(fake.url + "/api/v2/deals").headers["x-daily-ratelimit-token-remaining"] == "5"
    assert session.get(fake.url + "/api/v2/deals/1").status_code == 404  # 1 token still fits
    fake.reset_budget()
    assert session.get(fake.url + "/api/v2/deals").status_code == 200


def test_drop_after_commit_keeps_the_write_and_answers_nothing(api):
    fake, session = api(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        session.post(fake.url + "/api/v2/persons", json={"name": "Kept"}, timeout=5)
    assert [p["name"] for p in fake.persons()] == ["Kept"]
    assert fake.writes()[0].dropped
    assert session.get(fake.url + "/api/v2/persons").status_code == 200  # reads are answered


def test_injected_errors_are_5xx_and_only_524_commits(api):
    fake, session = api(error_rate=1.0, seed=3)
    statuses = {session.post(fake.url + "/api/v2/persons", json={"name": f"P{n}"}).status_code for n in range(30)}
    assert statuses == {500, 503, 524}
    committed = sum(1 for r in fake.writes() if r.status == 524)
    assert len(fake.persons()) == committed > 0


def test_latency_is_added_to_every_request(api):
    fake, session = api(latency=0.2)
    started = time.monotonic()
    session.get(fake.url + "/api/v2/persons")
    assert time.monotonic() - started >= 0.2


def test_enum_and_set_fields_have_option_ids_and_take_only_those(api):
    fake, session = api()
    created = session.post(
        fake.url + "/api/v2/dealFields",
        json={"field_name": "Channel", "field_type": "enum", "options": [{"label": "Shop"}, {"label": "Phone"}]},
    ).json()["data"]
    options = {o["label"]: o["id"] for o in created["options"]}
    assert set(options) == {"Shop", "Phone"} and all(isinstance(i, int) for i in options.values())
    tags = fake.add_field("deals", "Tags", "set", ["a", "b"])
    code = created["field_code"]
    wrong = [
        ({code: "Shop"}, "must be an integer"),
        ({code: 9999}, "option 9999 does not exist"),
        ({tags: [fake.option_id(tags, "a"), 9999]}, "option 9999 does not exist"),
        ({tags: []}, "non-empty array"),
    ]
    for custom, message in wrong:
        answer = session.post(fake.url + "/api/v2/deals", json={"title": "t", "custom_fields": custom})
        assert answer.status_code == 400 and message in answer.json()["error"], custom
    good = {code: options["Phone"], tags: [fake.option_id(tags, "b")]}
    assert session.post(fake.url + "/api/v2/deals", json={"title": "t", "custom_fields": good}).status_code == 200
    assert fake.deals()[0]["custom_fields"] == good


def test_ids_must_name_a_person_organization_owner_pipeline_or_stage_that_exists(api):
    fake, session = api()
    org = fake.seed("organizations", {"name": "Acme"})
    owner = fake.add_user("Sam Seller", "sam@example.com")
    pipeline, (first, won) = fake.add_pipeline("Renewals", ["New", "Won"])
    for key, missing in [("org_id", 999), ("owner_id", 999), ("pipeline_id", 999), ("stage_id", 999)]:
        answer = session.post(fake.url + "/api/v2/deals", json={"title": "t", key: missing})
        assert answer.status_code == 400 and "was not found" in answer.json()["error"], key
    body = {"title": "t", "org_id": org["id"], "owner_id": owner, "stage_id": won, "pipeline_id": 1}
    deal = session.post(fake.url + "/api/v2/deals", json=body).json()["data"]
    assert (deal["org_id"], deal["owner_id"], deal["pipeline_id"], deal["stage_id"]) == (
        org["id"],
        owner,
        pipeline,
        won,
    )
    moved = session.patch(f"{fake.url}/api/v2/deals/{deal['id']}", json={"pipeline_id": 1}).json()["data"]
    assert (moved["pipeline_id"], moved["stage_id"]) == (1, 1)  # a pipeline alone: its first stage
    assert session.get(fake.url + "/api/v2/organizations").json()["data"][0]["name"] == "Acme"
    assert first == won - 1


def test_status_sets_the_close_times_and_contacts_get_a_primary(api):
    fake, session = api()
    deal = session.post(fake.url + "/api/v2/deals", json={"title": "t", "status": "won"}).json()["data"]
    assert deal["won_time"] and deal["close_time"] and deal["lost_time"] is None
    url = f"{fake.url}/api/v2/deals/{deal['id']}"
    reopened = session.patch(url, json={"status": "open"}).json()["data"]
    assert (reopened["won_time"], reopened["close_time"]) == (None, None)
    person = session.post(
        fake.url + "/api/v2/persons", json={"name": "P", "emails": [{"value": "a@x.org"}, {"value": "b@x.org"}]}
    ).json()["data"]
    assert person["emails"] == [
        {"value": "a@x.org", "primary": True, "label": "work"},
        {"value": "b@x.org", "primary": False, "label": "work"},
    ]


def test_an_account_may_send_no_rate_limit_headers_at_all(api):
    fake, session = api(daily_budget=25, rate_headers=False, daily_headers=False)
    first = session.get(fake.url + "/api/v2/deals")
    assert first.status_code == 200
    assert not [name for name in first.headers if name.lower().startswith(("x-ratelimit", "x-daily"))]
    session.get(fake.url + "/api/v2/deals")
    spent = session.get(fake.url + "/api/v2/deals")
    assert spent.status_code == 429 and "x-daily-ratelimit-token-remaining" not in spent.headers
