"""The CloudFormation template keeps the least-privilege promise of DESIGN.md: the worker
reads events and their stream, writes projections and leases, and cannot write events; the
retry queue redrives to a dead-letter queue; tables match the code's layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from worker.config import Settings
from worker.engine import tables
from worker.model import layout

TEMPLATE = Path(__file__).resolve().parents[1] / "infra" / "budget-worker.yaml"
WRITES = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:TransactWriteItems",
    "dynamodb:*",
}


class _Loader(yaml.SafeLoader):
    """Reads CloudFormation's short-form intrinsics (!Ref, !GetAtt, !Sub) as plain data."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node)}
    return {suffix: loader.construct_mapping(node)}


_Loader.add_multi_constructor("!", _intrinsic)


def _template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_Loader)


def test_task_role_cannot_write_events() -> None:
    resources = _template()["Resources"]
    statements = resources["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    for statement in statements:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        targets = (
            statement["Resource"]
            if isinstance(statement["Resource"], list)
            else [statement["Resource"]]
        )
        touches_events = any("EventsTable" in str(t) for t in targets)
        if touches_events:
            assert not WRITES & set(actions), statement["Sid"]
    sids = {s["Sid"] for s in statements}
    assert {"ReadEvents", "ReadEventsStream", "WriteProjections", "KclTables", "RetryQueue"} <= sids


def test_retry_queue_redrives_to_a_dead_letter_queue() -> None:
    queue = _template()["Resources"]["RetryQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"GetAtt": "RetryDeadLetterQueue.Arn"}
    assert int(queue["RedrivePolicy"]["maxReceiveCount"]) >= 1


def test_tables_match_the_code() -> None:
    resources = _template()["Resources"]
    events = resources["EventsTable"]["Properties"]
    projections = resources["ProjectionsTable"]["Properties"]
    code_events = tables.events_table_spec("x")
    code_projections = tables.projections_table_spec("x")
    assert events["KeySchema"] == code_events["KeySchema"]
    assert events["StreamSpecification"]["StreamViewType"] == "KEYS_ONLY"
    [index] = projections["LocalSecondaryIndexes"]
    assert index["IndexName"] == layout.BY_DATE_INDEX
    assert index["KeySchema"] == code_projections["LocalSecondaryIndexes"][0]["KeySchema"]


def test_task_runs_the_kcl_driver_with_a_health_check() -> None:
    [container] = _template()["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert container["Command"] == ["run", "--driver", "kcl"]
    assert container["HealthCheck"]["Command"][1:3] == ["budget-worker", "health"]
    names = {e["Name"] for e in container["Environment"]}
    assert {
        "BUDGET_EVENTS_TABLE",
        "BUDGET_PROJECTIONS_TABLE",
        "BUDGET_LEASE_TABLE",
        "BUDGET_RETRY_QUEUE_URL",
    } <= names


def _statements() -> list[dict[str, Any]]:
    role = _template()["Resources"]["TaskRole"]["Properties"]
    return list(role["Policies"][0]["PolicyDocument"]["Statement"])


def test_both_tables_have_point_in_time_recovery_and_deletion_protection() -> None:
    resources = _template()["Resources"]
    for name in ("EventsTable", "ProjectionsTable"):
        table = resources[name]
        assert table["Properties"]["PointInTimeRecoverySpecification"] == {
            "PointInTimeRecoveryEnabled": True
        }, name
        assert table["Properties"]["DeletionProtectionEnabled"] is True, name
        assert table["DeletionPolicy"] == "Retain", name


def test_events_table_has_the_budgets_index_of_the_code() -> None:
    events = _template()["Resources"]["EventsTable"]["Properties"]
    [index] = events["GlobalSecondaryIndexes"]
    assert index == tables.budgets_index_spec()
    assert {"AttributeName": layout.BUCKET, "AttributeType": "S"} in events["AttributeDefinitions"]


def test_put_metric_data_is_limited_to_the_workers_namespaces() -> None:
    [statement] = [s for s in _statements() if "cloudwatch:PutMetricData" in str(s["Action"])]
    namespaces = statement["Condition"]["StringEquals"]["cloudwatch:namespace"]
    assert namespaces == [{"Ref": "ApplicationName"}, {"Ref": "MetricsNamespace"}]
    assert statement["Action"] == "cloudwatch:PutMetricData"  # nothing else rides on "*"


def test_the_worker_may_read_the_budgets_index_but_scan_nothing() -> None:
    [read] = [s for s in _statements() if s["Sid"] == "ReadEvents"]
    assert "dynamodb:Scan" not in read["Action"]
    assert {"Sub": "${EventsTable.Arn}/index/by_bucket"} in read["Resource"]


ALARMS = {
    # alarm: (namespace, metric)
    "ProjectionLagAlarm": ({"Ref": "MetricsNamespace"}, "ProjectionLagSeconds"),
    "RetryQueueAgeAlarm": ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
    "DeadLetterQueueAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    "DaemonRestartsAlarm": ({"Ref": "MetricsNamespace"}, "DaemonRestarts"),
    "StreamBehindAlarm": ({"Ref": "ApplicationName"}, "MillisBehindLatest"),
}


def test_alarms_watch_the_right_metrics_and_notify_the_topic() -> None:
    resources = _template()["Resources"]
    for name, (namespace, metric) in ALARMS.items():
        alarm = resources[name]
        assert alarm["Type"] == "AWS::CloudWatch::Alarm", name
        props = alarm["Properties"]
        assert (props["Namespace"], props["MetricName"]) == (namespace, metric), name
        assert props["AlarmActions"]["If"][0] == "HasAlarmTopic", name
        for dimension in props.get("Dimensions", []):
            assert "budget" not in dimension["Name"].lower(), name  # never per budget
    dlq = resources["DeadLetterQueueAlarm"]["Properties"]
    assert (dlq["Threshold"], dlq["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert dlq["Dimensions"] == [
        {"Name": "QueueName", "Value": {"GetAtt": "RetryDeadLetterQueue.QueueName"}}
    ]
    assert "AlarmTopicArn" in _template()["Parameters"]


def test_every_checkov_suppression_carries_a_reason() -> None:
    for name, resource in _template()["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 20, (name, skip["id"])


def test_container_emits_metrics_in_emf() -> None:
    [container] = _template()["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["BUDGET_METRICS"] == "emf"
    assert env["BUDGET_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}


def test_the_lambda_role_cannot_write_events_and_reads_the_stream() -> None:
    role = _template()["Resources"]["LambdaRole"]["Properties"]
    statements = role["Policies"][0]["PolicyDocument"]["Statement"]
    for statement in statements:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        if "EventsTable" in str(statement["Resource"]):
            assert not WRITES & set(actions), statement["Sid"]
    sids = {s["Sid"] for s in statements}
    assert {"ReadEvents", "ReadEventsStream", "WriteProjections", "RetryQueue"} <= sids


def test_the_lambda_handler_declared_is_the_one_in_the_code() -> None:
    import importlib

    function = _template()["Resources"]["StreamFunction"]["Properties"]
    module, name = function["Handler"].rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), name))
    assert function["Runtime"] in ("python3.11", "python3.12")


def test_the_stream_mapping_keeps_the_checkpoint_rule_and_bounds_failures() -> None:
    resources = _template()["Resources"]
    mapping = resources["StreamMapping"]["Properties"]
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == {"Ref": "StreamMaximumRetryAttempts"}
    assert mapping["MaximumRecordAgeInSeconds"] == {"Ref": "StreamMaximumRecordAgeSeconds"}
    assert mapping["ParallelizationFactor"] == {"Ref": "ParallelizationFactor"}
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {
        "GetAtt": "LambdaFailureQueue.Arn"
    }
    [only] = mapping["FilterCriteria"]["Filters"]
    pattern = json.loads(only["Pattern"])
    assert pattern["dynamodb"]["Keys"]["sk"]["S"] == [{"prefix": layout.EVENT_PREFIX}]
    parameters = _template()["Parameters"]
    assert parameters["ParallelizationFactor"]["MaxValue"] == 10
    assert int(parameters["StreamMaximumRecordAgeSeconds"]["MaxValue"]) <= 86400  # retention
    for alarm, metric in (
        ("IteratorAgeAlarm", "IteratorAge"),
        ("LambdaErrorsAlarm", "Errors"),
        ("LambdaFailureQueueAlarm", "ApproximateNumberOfMessagesVisible"),
    ):
        assert resources[alarm]["Properties"]["MetricName"] == metric


def _allowed(role: str) -> dict[str, set[str]]:
    """Per table logical id (EventsTable, ProjectionsTable): the DynamoDB actions `role` may
    call on the table itself."""
    resources = _template()["Resources"]
    statements = resources[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    allowed: dict[str, set[str]] = {}
    for statement in statements:
        actions = statement["Action"]
        actions = actions if isinstance(actions, list) else [actions]
        targets = statement["Resource"]
        targets = targets if isinstance(targets, list) else [targets]
        for target in targets:
            if isinstance(target, dict) and "GetAtt" in target:
                table = str(target["GetAtt"]).removesuffix(".Arn")
                allowed.setdefault(table, set()).update(actions)
    return allowed


def _stream_path_calls(settings: Settings) -> set[tuple[str, str]]:
    """(IAM action, table name) for every call the stream path makes on the tables: the
    batch-wide catch-up of budgets behind and current, then their snapshot rebuilds.
    TransactWriteItems is authorised per item (PutItem, UpdateItem, ConditionCheckItem...)."""
    from worker.api import BudgetWorker
    from worker.engine import aws
    from worker.engine.catch_ups import catch_up_budgets, keep
    from worker.engine.reads import Store
    from worker.engine.snapshots import Rebuilder

    writer = BudgetWorker(settings)
    for budget in ("behind", "current"):
        writer.persist(
            budget,
            "TransactionCreated",
            "t1",
            {"date": "2026-11-02", "amount": -100, "account": "a", "category": "c"},
        )
    client = aws.dynamodb(settings)
    store = Store.from_settings(client, settings)
    list(catch_up_budgets(store, ["current"], keep))
    calls: set[tuple[str, str]] = set()

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        name = model.name
        if name == "BatchGetItem":
            calls.update(("dynamodb:BatchGetItem", t) for t in params["RequestItems"])
        elif name == "TransactWriteItems":
            for item in params["TransactItems"]:
                [(kind, body)] = item.items()
                calls.add(
                    (
                        f"dynamodb:{kind.replace('Check', 'ConditionCheck')}Item"
                        if kind == "ConditionCheck"
                        else f"dynamodb:{kind}Item",
                        body["TableName"],
                    )
                )
        elif "TableName" in params:
            calls.add((f"dynamodb:{name}", params["TableName"]))

    client.meta.events.register("before-parameter-build.dynamodb", record)
    try:
        outcomes = list(catch_up_budgets(store, ["behind", "current"], keep, workers=2))
        assert [o.error for o in outcomes] == [None, None]
        for budget in ("behind", "current"):
            Rebuilder(store).rebuild(budget)
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb", record)
    return calls


def test_worker_roles_allow_every_call_the_stream_path_makes(moto_settings: Settings) -> None:
    """Derived from the calls the code makes, not from a list kept by hand: a new read (the
    batch-wide BatchGetItem of pointers and heads) must reach both roles before production."""
    calls = _stream_path_calls(moto_settings)
    logical = {
        moto_settings.events_table: "EventsTable",
        moto_settings.projections_table: "ProjectionsTable",
    }
    assert {action for action, _ in calls} >= {"dynamodb:BatchGetItem", "dynamodb:Query"}
    for role in ("TaskRole", "LambdaRole"):
        allowed = _allowed(role)
        missing = {
            (action, logical[table])
            for action, table in calls
            if action not in allowed.get(logical[table], set())
        }
        assert not missing, f"{role} lacks {sorted(missing)}"
