"""One record, three shapes: whatever shape a stream record arrives in, it decodes to the same
`Change`, and `encode` is what every driver and test uses to make the adapter's and Lambda's
shapes from GetRecords output."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from worker.errors import InvalidInput
from worker.stream import records

CREATED = datetime(2026, 11, 2, 9, 30, 15, 250000, tzinfo=UTC)


def test_the_three_shapes_decode_to_one_change() -> None:
    raw = records.stream_record("household", "EVENT#01J", sequence=42, created=CREATED)
    adapter = json.loads(base64.b64decode(records.encode(raw, records.ADAPTER)))
    lambda_ = records.encode(raw, records.LAMBDA, stream_arn="arn:stream")
    expected = records.Change(records.EVENT, "household", "42", CREATED.timestamp())
    assert records.change_of(raw, records.GET_RECORDS) == expected
    assert records.change_of(adapter, records.ADAPTER) == expected
    assert records.change_of(lambda_, records.LAMBDA) == expected
    assert records.budget_of(records.encode(raw, records.ADAPTER)) == "household"


def test_each_shape_carries_the_time_in_its_own_unit() -> None:
    raw = records.stream_record("b", "HEAD", created=CREATED)
    adapter = json.loads(base64.b64decode(records.encode(raw, records.ADAPTER)))
    lambda_ = records.encode(raw, records.LAMBDA, stream_arn="arn:stream")
    assert adapter["dynamodb"]["ApproximateCreationDateTime"] == int(CREATED.timestamp() * 1000)
    assert lambda_["dynamodb"]["ApproximateCreationDateTime"] == CREATED.timestamp()
    assert lambda_["eventSourceARN"] == "arn:stream" and "eventSourceARN" not in adapter
    # Lambda's seconds may be whole or fractional; both are read as seconds.
    lambda_["dynamodb"]["ApproximateCreationDateTime"] = 1700000000
    assert records.created_at(lambda_, records.LAMBDA) == 1700000000.0


def test_binary_values_become_base64_in_both_encoded_shapes() -> None:
    raw = records.stream_record("b", "HEAD")
    raw["dynamodb"]["NewImage"] = {"blob": {"B": b"\x00\x01"}}
    adapter = json.loads(base64.b64decode(records.encode(raw, records.ADAPTER)))
    lambda_ = records.encode(raw, records.LAMBDA, stream_arn="arn:stream")
    assert adapter["dynamodb"]["NewImage"]["blob"]["B"] == "AAE="
    assert lambda_["dynamodb"]["NewImage"]["blob"]["B"] == "AAE="


@pytest.mark.parametrize(
    ("sort_key", "event_name", "kind"),
    [
        ("EVENT#01J", "INSERT", records.EVENT),
        ("HEAD", "MODIFY", records.HEAD),
        ("ALIAS#01J", "INSERT", records.ALIAS),
        ("EVENT#01J", "REMOVE", records.REMOVE),
        ("POINTER", "MODIFY", records.FOREIGN),
    ],
)
def test_the_kind_comes_from_the_sort_key_and_event_name(
    sort_key: str, event_name: str, kind: str
) -> None:
    raw = records.stream_record("b", sort_key, event_name=event_name)
    assert records.change_of(raw, records.GET_RECORDS).kind == kind


def test_a_ttl_delete_is_told_from_an_app_delete() -> None:
    raw = records.stream_record("b", "EVENT#01J", event_name="REMOVE")
    raw["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert records.change_of(raw, records.GET_RECORDS).kind == records.TTL


def test_kcl_data_refuses_what_is_not_a_record() -> None:
    with pytest.raises(InvalidInput):
        records.budget_of(records.kcl_data([1, 2]))
    with pytest.raises(InvalidInput):
        records.budget_of(records.kcl_data(b"\xff"))
    assert records.budget_of(records.encode(records.stream_record("b", "HEAD"), "adapter")) == "b"


def test_get_records_output_is_not_an_encoding_target() -> None:
    with pytest.raises(ValueError, match="not a target"):
        records.encode(records.stream_record("b", "HEAD"), records.GET_RECORDS)  # type: ignore[call-overload]
