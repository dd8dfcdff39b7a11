"""Validation of intents: every bad input is refused with a clear reason, before any write."""

from __future__ import annotations

import pytest

from worker.errors import InvalidInput
from worker.model.events import EventType, build_event, check_data, parse_data_json, parse_event_id

GOOD_ID = "01JD0000000000000000000000"
CREATE = {"date": "2026-01-31", "amount": -1250, "account": "checking", "category": "food"}


def test_valid_create_is_canonical() -> None:
    event = build_event("b", "TransactionCreated", "t1", {**CREATE, "payee": "Shop"}, GOOD_ID)
    assert event.type is EventType.CREATED
    assert list(event.data) == sorted(event.data)
    assert event.data["payee"] == "Shop"


def test_lower_case_ulid_is_normalised() -> None:
    assert parse_event_id(GOOD_ID.lower()) == GOOD_ID


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not-a-ulid",
        "01JD000000000000000000000",
        "01JD00000000000000000000000",
        "01JD000000000000000000000U",
        "81JD0000000000000000000000",
    ],
)
def test_malformed_ulids_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput, match="event id"):
        parse_event_id(raw)


@pytest.mark.parametrize(
    ("event_type", "data", "message"),
    [
        ("TransactionCreated", {**CREATE, "amount": 1.5}, "integer"),
        ("TransactionCreated", {**CREATE, "amount": "12"}, "integer"),
        ("TransactionCreated", {**CREATE, "amount": True}, "integer"),
        ("TransactionCreated", {**CREATE, "amount": 10**31}, "out of range"),
        ("TransactionCreated", {**CREATE, "date": "2026-W03-4"}, "YYYY-MM-DD"),
        ("TransactionCreated", {**CREATE, "date": "\uff12\uff10\uff12\uff16-01-01"}, "YYYY-MM-DD"),
        ("TransactionCreated", {**CREATE, "memo": "bad \ud800 text"}, "Unicode"),
        ("TransactionCreated", {**CREATE, "date": "2026-02-30"}, "calendar date"),
        ("TransactionCreated", {**CREATE, "date": "2026-2-3"}, "YYYY-MM-DD"),
        ("TransactionCreated", {**CREATE, "date": 20260101}, "YYYY-MM-DD"),
        ("TransactionCreated", {"date": "2026-01-01", "amount": 1}, "missing field"),
        ("TransactionCreated", {**CREATE, "account": ""}, "must not be empty"),
        ("TransactionCreated", {**CREATE, "payee": 7}, "must be a string"),
        ("TransactionCreated", {**CREATE, "colour": "red"}, "unknown field"),
        ("TransactionCreated", ["not", "an", "object"], "JSON object"),
        ("TransactionUpdated", {}, "at least one field"),
        ("TransactionUpdated", {"account": None}, "must be a string"),
        ("TransactionDeleted", {"amount": 1}, "carries no data"),
    ],
)
def test_bad_data_is_refused(event_type: str, data: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        build_event("b", event_type, "t1", data, GOOD_ID)


def test_unknown_type_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown event type"):
        build_event("b", "TransactionExploded", "t1", {}, GOOD_ID)


@pytest.mark.parametrize("bad", ["", " padded", "x" * 129, "tab\there", None, 5])
def test_bad_identifiers_are_refused(bad: object) -> None:
    with pytest.raises(InvalidInput):
        build_event(bad, "TransactionDeleted", "t1", {}, GOOD_ID)
    with pytest.raises(InvalidInput):
        build_event("b", "TransactionDeleted", bad, {}, GOOD_ID)


def test_oversized_data_json_is_refused() -> None:
    with pytest.raises(InvalidInput, match="16384 bytes"):
        parse_data_json('{"memo": "' + "x" * 17000 + '"}')


def test_invalid_json_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse_data_json("{amount: 1}")


def test_update_may_clear_optional_fields() -> None:
    assert check_data(EventType.UPDATED, {"payee": None}) == {"payee": None}


def test_long_text_within_the_size_limit_is_accepted() -> None:
    event = build_event("b", "TransactionCreated", "t1", {**CREATE, "memo": "m" * 5000}, GOOD_ID)
    assert len(event.data["memo"]) == 5000


def test_event_ids_far_in_the_future_are_refused() -> None:
    with pytest.raises(InvalidInput, match="ahead of this clock"):
        parse_event_id("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", now=1_790_000_000.0)
    assert parse_event_id(GOOD_ID, now=1_790_000_000.0) == GOOD_ID


@pytest.mark.parametrize("raw", ['{"amount": ' + "9" * 5000 + "}", '{"memo": "\ud800"}'])
def test_unparseable_or_unencodable_json_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        check_data(EventType.CREATED, parse_data_json(raw) | CREATE_WITHOUT_MEMO)


CREATE_WITHOUT_MEMO = {k: v for k, v in CREATE.items()}
