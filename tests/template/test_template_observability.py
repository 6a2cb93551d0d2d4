"""Section 8, observability: the encrypted alarm topic and its optional channels, the SLO alarms
(multi-window burn rates, p95, error rate, rate limiter), the dashboard and the correlation-id query."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.template.cfn_helpers import as_list, contains_wildcard, of_type, policy_statements, resolve_sub
from tests.template.conftest import PSEUDO_PARAMETERS, REPO_ROOT

ALARM_TYPES = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")
BUDGET = 0.001  # 99.9 % availability


def alarms(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {lid: res for t in ALARM_TYPES for lid, res in of_type(resources, t).items()}


def substitute(body: str, cfn: dict[str, Any], values: dict[str, str] | None = None) -> str:
    """Evaluates an Fn::Sub string whose ${...} name parameters, pseudo parameters or resources (with or
    without an attribute); every name must exist in the template."""
    known = set(cfn["Resources"]) | set(cfn["Parameters"])

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if values and name in values:
            return values[name]
        assert name.split(".")[0] in known, f"${{{name}}} names nothing in the template"
        return f"<{name}>"

    return re.sub(r"\$\{([^}!]+)\}", repl, body)


# ---- the topic and its channels -----------------------------------------------------------------------------
def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(resources: dict[str, Any]) -> None:
    (topic_id,) = of_type(resources, "AWS::SNS::Topic")
    topic = resources[topic_id]["Properties"]
    key_id = topic["KmsMasterKeyId"]["Ref"]
    key = resources[key_id]["Properties"]
    assert resources[key_id]["Type"] == "AWS::KMS::Key"
    assert key["EnableKeyRotation"] is True
    statements = {s["Sid"]: s for s in key["KeyPolicy"]["Statement"]}
    cloudwatch = statements["CloudWatchAlarmsPublish"]
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    # not the AWS managed key alias/aws/sns: CloudWatch alarms cannot use it
    assert "alias/aws/sns" not in json.dumps(topic)


def test_only_this_stacks_alarms_publish_over_tls(resources: dict[str, Any]) -> None:
    (policy,) = of_type(resources, "AWS::SNS::TopicPolicy").values()
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    allow = statements["StackAlarmsPublish"]
    assert (allow["Effect"], allow["Principal"], allow["Action"]) == (
        "Allow",
        {"Service": "cloudwatch.amazonaws.com"},
        "sns:Publish",
    )
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    source_arn = resolve_sub(allow["Condition"]["ArnLike"]["aws:SourceArn"], PSEUDO_PARAMETERS)
    assert source_arn == "arn:aws:cloudwatch:us-east-1:123456789012:alarm:sentiment-api-prod-*"
    tls = statements["TlsOnly"]
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_every_alarm_is_named_after_the_stack_so_the_topic_accepts_it(resources: dict[str, Any]) -> None:
    for logical_id, alarm in alarms(resources).items():
        name = resolve_sub(alarm["Properties"]["AlarmName"], PSEUDO_PARAMETERS)
        assert name.startswith("sentiment-api-prod-"), logical_id


def test_alarm_actions_go_to_the_one_topic(resources: dict[str, Any]) -> None:
    notifying = 0
    for logical_id, alarm in alarms(resources).items():
        props = alarm["Properties"]
        for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
            assert all(action == {"Ref": "AlarmTopic"} for action in props.get(key, [])), logical_id
        notifying += bool(props.get("AlarmActions"))
    assert notifying >= 9


def _evaluate(condition: Any, params: dict[str, str]) -> bool:
    """Fn::Not / Fn::And / Fn::Equals over Refs to parameters: enough for this template's conditions."""
    if isinstance(condition, dict):
        ((fn, args),) = condition.items()
        if fn == "Fn::Not":
            return not _evaluate(args[0], params)
        if fn == "Fn::And":
            return all(_evaluate(a, params) for a in args)
        if fn == "Fn::Equals":
            left, right = (params[a["Ref"]] if isinstance(a, dict) else a for a in args)
            return bool(left == right)
    raise AssertionError(f"unexpected condition {condition!r}")


@pytest.mark.parametrize(
    ("params", "email", "slack"),
    [
        ({"AlarmEmail": "", "SlackWorkspaceId": "", "SlackChannelId": ""}, False, False),
        ({"AlarmEmail": "ops@example.com", "SlackWorkspaceId": "", "SlackChannelId": ""}, True, False),
        ({"AlarmEmail": "", "SlackWorkspaceId": "T0123ABCD", "SlackChannelId": ""}, False, False),
        ({"AlarmEmail": "", "SlackWorkspaceId": "T0123ABCD", "SlackChannelId": "C0123ABCD"}, False, True),
    ],
)
def test_email_and_slack_exist_only_when_configured(
    cfn: dict[str, Any], params: dict[str, str], email: bool, slack: bool
) -> None:
    conditions = cfn["Conditions"]
    assert _evaluate(conditions["HasAlarmEmail"], params) is email
    assert _evaluate(conditions["HasSlackChannel"], params) is slack
    for parameter in params:
        assert cfn["Parameters"][parameter]["Default"] == ""  # off unless given


def test_email_subscription(resources: dict[str, Any]) -> None:
    (sub,) = of_type(resources, "AWS::SNS::Subscription").values()
    assert sub["Condition"] == "HasAlarmEmail"
    assert sub["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }


def test_slack_channel_through_chatbot_with_a_read_only_role(resources: dict[str, Any]) -> None:
    (channel,) = of_type(resources, "AWS::Chatbot::SlackChannelConfiguration").values()
    assert channel["Condition"] == "HasSlackChannel"
    props = channel["Properties"]
    assert props["SnsTopicArns"] == [{"Ref": "AlarmTopic"}]
    assert (props["SlackWorkspaceId"], props["SlackChannelId"]) == (
        {"Ref": "SlackWorkspaceId"},
        {"Ref": "SlackChannelId"},
    )
    guardrails = [resolve_sub(g, PSEUDO_PARAMETERS) for g in props["GuardrailPolicies"]]
    assert guardrails == ["arn:aws:iam::aws:policy/CloudWatchReadOnlyAccess"]  # not AdministratorAccess
    role = resources[props["IamRoleArn"]["Fn::GetAtt"][0]]
    assert role["Condition"] == "HasSlackChannel"
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "chatbot.amazonaws.com"}
    assert "ManagedPolicyArns" not in role["Properties"]
    for statement in policy_statements(role):
        assert statement["Effect"] == "Allow" and not contains_wildcard(statement["Action"])
        assert {a.split(":")[1][:3] for a in as_list(statement["Action"])} <= {"Des", "Get"}  # read only


# ---- SLO alarms -------------------------------------------------------------------------------------------------
def _queries(alarm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["Id"]: q for q in alarm["Properties"]["Metrics"]}


@pytest.mark.parametrize(
    ("alarm_id", "period", "burn_rate"),
    [
        ("SloBurnRate1hAlarm", 3600, 14.4),
        ("SloBurnRate5mAlarm", 300, 14.4),
        ("SloBurnRate6hAlarm", 21600, 6),
        ("SloBurnRate30mAlarm", 1800, 6),
    ],
)
def test_burn_rate_window_alarms(resources: dict[str, Any], alarm_id: str, period: int, burn_rate: float) -> None:
    alarm = resources[alarm_id]
    queries = _queries(alarm)
    errors, requests = queries["errors"]["MetricStat"], queries["requests"]["MetricStat"]
    assert (errors["Metric"]["Namespace"], errors["Metric"]["MetricName"]) == ("AWS/ApiGateway", "5xx")
    assert (requests["Metric"]["Namespace"], requests["Metric"]["MetricName"]) == ("AWS/ApiGateway", "Count")
    for stat in (errors, requests):
        assert stat["Metric"]["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": "Api"}}]
        assert (stat["Period"], stat["Stat"]) == (period, "Sum")
    assert queries["burn_rate"]["Expression"] == f"(errors / requests) / {BUDGET}"
    props = alarm["Properties"]
    assert (props["Threshold"], props["ComparisonOperator"], props["EvaluationPeriods"]) == (
        burn_rate,
        "GreaterThanThreshold",
        1,
    )
    assert props["TreatMissingData"] == "notBreaching"
    assert not props.get("AlarmActions")  # the composites notify


@pytest.mark.parametrize(
    ("composite", "long_window", "short_window"),
    [
        ("SloFastBurnAlarm", "SloBurnRate1hAlarm", "SloBurnRate5mAlarm"),
        ("SloSlowBurnAlarm", "SloBurnRate6hAlarm", "SloBurnRate30mAlarm"),
    ],
)
def test_burn_rate_composites_need_both_windows(
    resources: dict[str, Any], composite: str, long_window: str, short_window: str
) -> None:
    props = resources[composite]["Properties"]
    assert resources[composite]["Type"] == "AWS::CloudWatch::CompositeAlarm"
    assert props["AlarmRule"] == {"Fn::Sub": f'ALARM("${{{long_window}.Arn}}") AND ALARM("${{{short_window}.Arn}}")'}
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_p95_latency_alarm_is_the_slo(resources: dict[str, Any]) -> None:
    props = resources["ApiLatencyP95Alarm"]["Properties"]
    assert (props["Namespace"], props["MetricName"], props["ExtendedStatistic"]) == ("AWS/ApiGateway", "Latency", "p95")
    assert (props["Threshold"], props["ComparisonOperator"]) == (700, "GreaterThanThreshold")


def test_error_rate_alarm_counts_4xx_and_5xx(resources: dict[str, Any]) -> None:
    alarm = resources["ApiErrorRateAlarm"]
    queries = _queries(alarm)
    assert {q["MetricStat"]["Metric"]["MetricName"] for q in queries.values() if "MetricStat" in q} == {
        "4xx",
        "5xx",
        "Count",
    }
    assert alarm["Properties"]["Threshold"] == 0.01


def test_rate_limiter_errors_alarm_sums_every_reason(resources: dict[str, Any]) -> None:
    (query,) = resources["RateLimiterErrorsAlarm"]["Properties"]["Metrics"]
    expression = substitute(
        query["Expression"]["Fn::Sub"], {"Resources": resources, "Parameters": {"Stage": 1}}, {"Stage": "prod"}
    )
    assert expression == (
        "SELECT SUM(RateLimiterErrors) FROM SCHEMA(\"SentimentApi\", Reason, Stage, service) WHERE Stage = 'prod'"
    )
    assert query["Period"] == 60


def test_deployment_outcome_alarms_watch_the_hook_verdicts(resources: dict[str, Any]) -> None:
    for alarm_id, verdict in (("DeploymentRolledBackAlarm", "rollback"), ("CanaryInconclusiveAlarm", "inconclusive")):
        props = resources[alarm_id]["Properties"]
        assert (props["Namespace"], props["MetricName"]) == ("SentimentApi", "CanaryVerdicts")
        assert {"Name": "Verdict", "Value": verdict} in props["Dimensions"]


# ---- dashboard -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dashboard(cfn: dict[str, Any]) -> dict[str, Any]:
    (resource,) = of_type(cfn["Resources"], "AWS::CloudWatch::Dashboard").values()
    body_template, local = resource["Properties"]["DashboardBody"]["Fn::Sub"]
    assert set(local) == {"ServingEndpoint"}, local  # the live endpoint, given or the bootstrap one
    body = substitute(body_template, cfn, {"ServingEndpoint": "<ServingEndpoint>"})
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def _metric_rows(dashboard: dict[str, Any]) -> list[list[Any]]:
    return [row for w in dashboard["widgets"] if w["type"] == "metric" for row in w["properties"]["metrics"]]


def _has_metric(dashboard: dict[str, Any], namespace: str, name: str, stat: str | None = None) -> bool:
    for row in _metric_rows(dashboard):
        if isinstance(row[0], dict):
            expression = row[0]["expression"]
            if (
                namespace in expression
                and f'MetricName="{name}"' in expression
                and (stat is None or f"'{stat}'" in expression)
            ):
                return True
        elif row[0] == namespace and row[1] == name and (stat is None or row[-1].get("stat") == stat):
            return True
    return False


@pytest.mark.parametrize(
    ("namespace", "name", "stat"),
    [
        ("AWS/ApiGateway", "Count", "Sum"),
        ("AWS/ApiGateway", "Latency", "p50"),
        ("AWS/ApiGateway", "Latency", "p95"),
        ("AWS/ApiGateway", "Latency", "p99"),
        ("AWS/ApiGateway", "4xx", "Sum"),
        ("AWS/ApiGateway", "5xx", "Sum"),
        ("AWS/Lambda", "Duration", "p50"),
        ("AWS/Lambda", "Duration", "p95"),
        ("AWS/Lambda", "Duration", "p99"),
        ("AWS/Lambda", "Errors", "Sum"),
        ("AWS/Lambda", "Throttles", "Sum"),
        ("AWS/Lambda", "ConcurrentExecutions", "Maximum"),
        ("SentimentApi", "RateLimited", "Sum"),
        ("SentimentApi", "RateLimiterErrors", "Sum"),
        ("AWS/SageMaker", "Invocations", "Sum"),
        ("AWS/SageMaker", "Invocation4XXErrors", "Sum"),
        ("AWS/SageMaker", "Invocation5XXErrors", "Sum"),
        ("AWS/SageMaker", "ModelLatency", "p95"),
        ("SentimentApi", "Latency", "p95"),
        ("SentimentApi", "5xx", "Average"),
        ("SentimentApi", "Requests", "Sum"),
        ("SentimentApi", "Predictions", "Sum"),
    ],
)
def test_dashboard_shows(dashboard: dict[str, Any], namespace: str, name: str, stat: str) -> None:
    assert _has_metric(dashboard, namespace, name, stat)


def test_dashboard_compares_versions_and_labels(dashboard: dict[str, Any]) -> None:
    searches = [row[0]["expression"] for row in _metric_rows(dashboard) if isinstance(row[0], dict)]
    by_version = [s for s in searches if "{SentimentApi,FunctionVersion,Stage}" in s]
    assert {re.search(r'MetricName="(\w+)"', s).group(1) for s in by_version} == {  # type: ignore[union-attr]
        "Latency",
        "5xx",
        "Requests",
    }
    labels = {
        row[row.index("Label") + 1]
        for row in _metric_rows(dashboard)
        if not isinstance(row[0], dict) and "Label" in row
    }
    assert labels == {"positive", "neutral", "negative"}


def test_sagemaker_model_latency_is_labelled_in_microseconds(dashboard: dict[str, Any]) -> None:
    (widget,) = [w for w in dashboard["widgets"] if "ModelLatency" in json.dumps(w)]
    assert widget["properties"]["yAxis"]["left"]["label"] == "microseconds"
    assert "microseconds" in widget["properties"]["title"]


def test_dashboard_emf_dimensions_are_the_ones_the_function_emits(dashboard: dict[str, Any]) -> None:
    """powertools publishes the request metrics with Stage + service (and, for the canary, Stage +
    FunctionVersion); a dashboard line with other dimensions would show nothing."""
    for row in _metric_rows(dashboard):
        if isinstance(row[0], dict) or row[0] != "SentimentApi":
            continue
        dims = dict(zip(row[2:-1:2], row[3:-1:2], strict=True))
        assert {"Stage", "service"} <= set(dims), row
        assert dims["service"] == "sentiment-api"


def test_dashboard_links_the_alarms(dashboard: dict[str, Any], resources: dict[str, Any]) -> None:
    (widget,) = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
    shown = set(widget["properties"]["alarms"])
    notifying = {f"<{lid}.Arn>" for lid, a in alarms(resources).items() if a["Properties"].get("AlarmActions")}
    assert notifying <= shown


def test_widgets_fit_the_24_column_grid(dashboard: dict[str, Any]) -> None:
    for widget in dashboard["widgets"]:
        assert widget["x"] + widget["width"] <= 24


# ---- correlation ids ------------------------------------------------------------------------------------------
def test_saved_query_follows_one_correlation_id_across_api_and_function_logs(resources: dict[str, Any]) -> None:
    (query,) = of_type(resources, "AWS::Logs::QueryDefinition").values()
    props = query["Properties"]
    assert {"Ref": "ApiAccessLogGroup"} in props["LogGroupNames"]
    assert {"Ref": "PredictFunctionLogGroup"} in props["LogGroupNames"]
    assert [p["Name"] for p in props["Parameters"]] == ["correlationId"]
    text = props["QueryString"]
    # API access log field requestId (template Format), function log field correlation_id (powertools)
    assert 'correlation_id = "{{correlationId}}"' in text and 'requestId = "{{correlationId}}"' in text
    assert "sort @timestamp asc" in text
    access_format = resources["ApiApiGatewayDefaultStage"]["Properties"]["AccessLogSettings"]["Format"]
    assert '"requestId":"$context.requestId"' in access_format


# ---- the SLO document -------------------------------------------------------------------------------------------
def test_slo_document_states_the_budget_the_alarms_use() -> None:
    text = (REPO_ROOT / "docs" / "slo.md").read_text(encoding="utf-8")
    for fact in ("99.9", "43.2 minutes", "14.4", "6 ", "700 ms", "1 %"):
        assert fact in text, fact
