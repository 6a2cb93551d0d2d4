"""Section 5, deployment safety: the CodeDeploy canary of PredictFunction, its rollback alarms and hooks,
in the transformed template (plain CloudFormation)."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from canary import alarms as canary_alarms
from canary import release as canary_release
from canary import settings as hook_settings

from tests.helpers import FUNCTION_ENV
from tests.template.cfn_helpers import as_list, contains_wildcard, of_type, only, policy_statements, resolve_sub
from tests.template.conftest import PSEUDO_PARAMETERS, REPO_ROOT

HOOKS = ("PreTrafficHookFunction", "PostTrafficHookFunction")
GROUP_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:deploymentgroup:"
    "${ServerlessDeploymentApplication}/${PredictFunctionDeploymentGroup}"
}
APPLICATION_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:application:"
    "${ServerlessDeploymentApplication}"
}
BASIC_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}


def role_of(resources: dict[str, Any], function_id: str) -> dict[str, Any]:
    return resources[resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]]


def statements_by_sid(role: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy_statements(role)}


# ---- CodeDeploy ---------------------------------------------------------------------------------------------
def test_one_codedeploy_application_for_lambda(resources: dict[str, Any]) -> None:
    logical_id, app = only(resources, "AWS::CodeDeploy::Application")
    assert logical_id == "ServerlessDeploymentApplication"
    assert app["Properties"]["ComputePlatform"] == "Lambda"


ROLLBACK_ALARMS = (
    "CanaryLatencyAlarm",
    "CanaryErrorRateAlarm",
    "CanaryFastErrorRateAlarm",
    "CanaryClientErrorAlarm",
    "CanaryUnhandledErrorsAlarm",
)
ALARM_BUILDERS = dict(
    zip(
        ROLLBACK_ALARMS,
        ("latency_alarm", "error_rate_alarm", "fast_error_alarm", "client_error_alarm", "unhandled_errors_alarm"),
        strict=True,
    )
)


def test_deployment_group_is_a_10_percent_time_based_canary_with_auto_rollback(resources: dict[str, Any]) -> None:
    logical_id, group = only(resources, "AWS::CodeDeploy::DeploymentGroup")
    assert logical_id == "PredictFunctionDeploymentGroup"
    props = group["Properties"]
    assert props["DeploymentConfigName"] == {"Ref": "CanaryDeploymentConfig"}
    config = resources["CanaryDeploymentConfig"]["Properties"]
    assert config["ComputePlatform"] == "Lambda"
    assert config["TrafficRoutingConfig"] == {
        "Type": "TimeBasedCanary",
        "TimeBasedCanary": {"CanaryPercentage": 10, "CanaryInterval": {"Ref": "CanaryIntervalMinutes"}},
    }
    assert props["DeploymentStyle"] == {"DeploymentType": "BLUE_GREEN", "DeploymentOption": "WITH_TRAFFIC_CONTROL"}
    rollback = props["AutoRollbackConfiguration"]
    assert rollback["Enabled"] is True
    assert {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"} <= set(rollback["Events"])
    assert props["AlarmConfiguration"] == {"Enabled": True, "Alarms": [{"Name": {"Ref": a}} for a in ROLLBACK_ALARMS]}


def test_canary_interval_defaults_to_the_design_card_and_prod_waits_for_the_sustained_rule(cfn: dict[str, Any]) -> None:
    """Canary10Percent5Minutes by default; prod 10 minutes, long enough for 5 of 5 minutes + the metric lag
    (make simulate-release shows the difference)."""
    param = cfn["Parameters"]["CanaryIntervalMinutes"]
    assert (param["Type"], param["Default"]) == ("Number", 5)
    samconfig = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text())
    overrides = {
        env: dict(o.split("=", 1) for o in samconfig[env]["deploy"]["parameters"]["parameter_overrides"])
        for env in ("dev", "prod")
    }
    assert overrides["prod"]["CanaryIntervalMinutes"] == "10"
    assert overrides["prod"]["CanaryLowTrafficVerdict"] == "rollback"  # no promotion on zero evidence in prod
    assert overrides["dev"]["CanaryLowTrafficVerdict"] == "promote"


def test_codedeploy_service_role_may_invoke_codedeployhook_functions_only(resources: dict[str, Any]) -> None:
    group = resources["PredictFunctionDeploymentGroup"]["Properties"]
    role = resources[group["ServiceRoleArn"]["Fn::GetAtt"][0]]
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": ["codedeploy.amazonaws.com"]}
    # AWSCodeDeployRoleForLambda: lambda:InvokeFunction on arn:aws:lambda:*:*:function:CodeDeployHook_*
    assert role["Properties"]["ManagedPolicyArns"] == [
        "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda"
    ]


def test_alias_live_is_shifted_by_codedeploy_with_both_hooks(resources: dict[str, Any]) -> None:
    alias = resources["PredictFunctionAliaslive"]
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update == {
        "ApplicationName": {"Ref": "ServerlessDeploymentApplication"},
        "DeploymentGroupName": {"Ref": "PredictFunctionDeploymentGroup"},
        "BeforeAllowTrafficHook": {"Ref": "PreTrafficHookFunction"},
        "AfterAllowTrafficHook": {"Ref": "PostTrafficHookFunction"},
    }


def test_only_the_predict_function_is_canaried(resources: dict[str, Any], sam_template: dict[str, Any]) -> None:
    for hook in HOOKS:
        assert sam_template["Resources"][hook]["Properties"]["DeploymentPreference"] == {"Enabled": False}
    assert list(of_type(resources, "AWS::Lambda::Alias")) == ["PredictFunctionAliaslive"]


# ---- the rollback alarms ------------------------------------------------------------------------------------
def _shape(metrics: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """An alarm's metric queries without the dimension values (the versions the hook fills in)."""
    shape = []
    for query in metrics:
        stat = query.get("MetricStat")
        if stat:
            metric = stat["Metric"]
            shape.append(
                (
                    query["Id"],
                    metric["Namespace"],
                    metric["MetricName"],
                    tuple(d["Name"] for d in metric["Dimensions"]),
                    stat["Period"],
                    stat["Stat"],
                    query["ReturnData"],
                )
            )
        else:
            shape.append((query["Id"], query["Expression"], query["ReturnData"]))
    return shape


@pytest.mark.parametrize(("alarm_id", "builder"), ALARM_BUILDERS.items())
def test_template_alarms_have_the_shape_the_pre_traffic_hook_writes(
    resources: dict[str, Any], alarm_id: str, builder: str
) -> None:
    settings = hook_settings.HookSettings.from_env({**FUNCTION_ENV, **hook_env(resources, "PreTrafficHookFunction")})
    written = getattr(canary_alarms, builder)(settings, canary_release.Release("d-1", "fn", "live", "1", "2"))
    declared = resources[alarm_id]["Properties"]
    assert _shape(declared["Metrics"]) == _shape(written["Metrics"])
    for key in ("Threshold", "ComparisonOperator", "EvaluationPeriods", "DatapointsToAlarm", "TreatMissingData"):
        assert declared[key] == written[key], key
    assert declared["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_template_alarms_are_declared_idle(resources: dict[str, Any]) -> None:
    """Idle = watching a version that does not exist: OK until the PreTraffic hook arms them, and what the
    PostTraffic hook writes back after the verdict (canary.alarms.idle_alarms)."""
    idle = canary_alarms.IDLE_VERSION
    for alarm_id in ROLLBACK_ALARMS:
        versions = {
            d["Value"]
            for q in resources[alarm_id]["Properties"]["Metrics"]
            if "MetricStat" in q
            for d in q["MetricStat"]["Metric"]["Dimensions"]
            if d["Name"] in ("FunctionVersion", "ExecutedVersion")
        }
        assert versions == {idle}, alarm_id


def test_rollback_thresholds_are_the_spec_rule(resources: dict[str, Any]) -> None:
    latency = resources["CanaryLatencyAlarm"]["Properties"]
    errors = resources["CanaryErrorRateAlarm"]["Properties"]
    assert (latency["Threshold"], errors["Threshold"]) == (1.3, 0.02)  # +30 % p95, 2 % errors
    for alarm in (latency, errors):
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (5, 5)  # sustained 5 minutes
        assert {q["MetricStat"]["Period"] for q in alarm["Metrics"] if "MetricStat" in q} == {60}


# ---- the hooks ----------------------------------------------------------------------------------------------
def hook_env(resources: dict[str, Any], hook: str) -> dict[str, str]:
    """The hook's environment with references replaced by example values."""
    examples = {
        "PredictFunction": "sentiment-api-prod-PredictFunction-AbC",
        **{alarm_id: alarm_id.lower() for alarm_id in ROLLBACK_ALARMS},
        "AlarmTopic": "arn:aws:sns:us-east-1:123456789012:t",
        "CanaryLowTrafficVerdict": "promote",
        "CanaryIntervalMinutes": "5",
        "Stage": "prod",
    }
    env = {}
    for name, value in resources[hook]["Properties"]["Environment"]["Variables"].items():
        env[name] = examples[value["Ref"]] if isinstance(value, dict) else value
    return env


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_names_start_with_codedeployhook_and_fit_lambda_limits(resources: dict[str, Any], hook: str) -> None:
    name = resolve_sub(resources[hook]["Properties"]["FunctionName"], PSEUDO_PARAMETERS)
    assert name.startswith("CodeDeployHook_")
    # 64 characters at most: a stack name of up to 44 characters fits (deploy/deploy.sh checks it)
    longest = resolve_sub(resources[hook]["Properties"]["FunctionName"], {"AWS::StackName": "s" * 44})
    assert len(longest) <= 64, longest


@pytest.mark.parametrize("hook", HOOKS)
def test_hooks_run_the_canary_hooks_code_and_the_core_layer(
    resources: dict[str, Any], sam_template: dict[str, Any], hook: str
) -> None:
    props = resources[hook]["Properties"]
    handler = {"PreTrafficHookFunction": "pre_traffic", "PostTrafficHookFunction": "post_traffic"}[hook]
    assert props["Handler"] == f"app.{handler}"
    (core,) = [
        lid
        for lid, res in resources.items()
        if res["Type"] == "AWS::Lambda::LayerVersion"
        and res["Properties"]["LayerName"] == {"Fn::Sub": "${AWS::StackName}-core"}
    ]
    assert [layer["Ref"] for layer in props["Layers"]] == [core]
    code_dir = REPO_ROOT / sam_template["Resources"][hook]["Properties"]["CodeUri"]
    assert code_dir == REPO_ROOT / "functions" / "canary_hooks"
    assert (code_dir / "app.py").read_text().count(f"def {handler}(") == 1


@pytest.mark.parametrize("hook", HOOKS)
def test_hooks_are_not_retried_and_log_to_their_own_group(resources: dict[str, Any], hook: str) -> None:
    (config,) = [
        r
        for r in of_type(resources, "AWS::Lambda::EventInvokeConfig").values()
        if r["Properties"]["FunctionName"] == {"Ref": hook}
    ]
    assert config["Properties"]["MaximumRetryAttempts"] == 0
    group = resources[hook]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    assert resources[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_hook_timeouts_cover_their_work(resources: dict[str, Any]) -> None:
    pre = resources["PreTrafficHookFunction"]["Properties"]
    post = resources["PostTrafficHookFunction"]["Properties"]
    predict_timeout = resources["PredictFunction"]["Properties"]["Timeout"]
    assert pre["Timeout"] >= 6 * predict_timeout  # five synchronous invocations of the new version + alarms
    lag = int(post["Environment"]["Variables"]["CANARY_METRIC_LAG_S"])
    assert post["Timeout"] >= lag + 60  # the metric-lag wait + GetMetricData


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_configuration_is_the_spec_rule(resources: dict[str, Any], hook: str) -> None:
    settings = hook_settings.HookSettings.from_env({**FUNCTION_ENV, **hook_env(resources, hook)})
    assert (settings.rule.max_latency_ratio, settings.rule.max_error_rate, settings.rule.window_minutes) == (
        1.3,
        0.02,
        5,
    )
    assert settings.alias == "live"
    variables = resources[hook]["Properties"]["Environment"]["Variables"]
    assert variables["PREDICT_FUNCTION_NAME"] == {"Ref": "PredictFunction"}
    assert variables["CANARY_LATENCY_ALARM"] == {"Ref": "CanaryLatencyAlarm"}
    assert variables["CANARY_ERROR_ALARM"] == {"Ref": "CanaryErrorRateAlarm"}
    assert variables["CANARY_FAST_ERROR_ALARM"] == {"Ref": "CanaryFastErrorRateAlarm"}
    assert variables["CANARY_CLIENT_ERROR_ALARM"] == {"Ref": "CanaryClientErrorAlarm"}
    assert variables["CANARY_UNHANDLED_ERRORS_ALARM"] == {"Ref": "CanaryUnhandledErrorsAlarm"}


def test_hooks_get_the_same_environment(resources: dict[str, Any]) -> None:
    pre, post = (resources[hook]["Properties"]["Environment"]["Variables"] for hook in HOOKS)
    assert pre == post


def test_window_is_the_canary_interval(resources: dict[str, Any]) -> None:
    interval = resources["CanaryDeploymentConfig"]["Properties"]["TrafficRoutingConfig"]["TimeBasedCanary"]
    for hook in HOOKS:
        variables = resources[hook]["Properties"]["Environment"]["Variables"]
        assert variables["CANARY_WINDOW_MINUTES"] == interval["CanaryInterval"]


def test_low_traffic_choice_is_a_parameter(cfn: dict[str, Any], resources: dict[str, Any]) -> None:
    param = cfn["Parameters"]["CanaryLowTrafficVerdict"]
    assert (param["Default"], param["AllowedValues"]) == ("promote", ["promote", "rollback"])
    variables = resources["PostTrafficHookFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["CANARY_LOW_TRAFFIC_VERDICT"] == {"Ref": "CanaryLowTrafficVerdict"}
    assert variables["CANARY_MIN_REQUESTS"] == "50"


# ---- least privilege of the hooks ------------------------------------------------------------------------------
EXPECTED_HOOK_STATEMENTS = {
    "PreTrafficHookFunction": {
        "ReadDeployment": (["codedeploy:GetDeployment"], [GROUP_ARN]),
        "ReadAppSpec": (["codedeploy:GetApplicationRevision"], [APPLICATION_ARN]),
        "ReportHookStatus": (["codedeploy:PutLifecycleEventHookExecutionStatus"], [GROUP_ARN]),
        "ReadStableVersion": (["lambda:GetAlias"], [{"Fn::Sub": "${PredictFunction.Arn}:live"}]),
        "InvokePredictVersions": (["lambda:InvokeFunction"], [{"Fn::Sub": "${PredictFunction.Arn}:*"}]),
        "WriteCanaryAlarms": (
            ["cloudwatch:PutMetricAlarm"],
            [{"Fn::GetAtt": [alarm_id, "Arn"]} for alarm_id in ROLLBACK_ALARMS],
        ),
    },
    "PostTrafficHookFunction": {
        "ReadDeployment": (["codedeploy:GetDeployment"], [GROUP_ARN]),
        "ReadAppSpec": (["codedeploy:GetApplicationRevision"], [APPLICATION_ARN]),
        "ReportHookStatus": (["codedeploy:PutLifecycleEventHookExecutionStatus"], [GROUP_ARN]),
        "ReadCanaryMetrics": (["cloudwatch:GetMetricData"], ["*"]),  # no resource-level permissions exist
        "WriteCanaryAlarms": (
            ["cloudwatch:PutMetricAlarm"],
            [{"Fn::GetAtt": [alarm_id, "Arn"]} for alarm_id in ROLLBACK_ALARMS],
        ),
    },
}


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_roles_are_least_privilege(resources: dict[str, Any], hook: str) -> None:
    role = role_of(resources, hook)
    got = {sid: (as_list(s["Action"]), as_list(s["Resource"])) for sid, s in statements_by_sid(role).items()}
    assert got == EXPECTED_HOOK_STATEMENTS[hook]
    for statement in policy_statements(role):
        assert statement["Effect"] == "Allow"
        assert not {"NotAction", "NotResource"} & set(statement)
        assert not contains_wildcard(statement["Action"])
    assert set(role["Properties"]["ManagedPolicyArns"]) == BASIC_MANAGED_POLICIES
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": ["lambda.amazonaws.com"]}


def test_the_only_wildcard_resources_are_the_ones_iam_requires(resources: dict[str, Any]) -> None:
    """`*` only for actions without resource-level permissions; the predict versions are qualified ARNs."""
    allowed_star_actions = {"cloudwatch:GetMetricData", "cloudwatch:DescribeAlarms", "cloudwatch:GetMetricWidgetImage"}
    for hook in HOOKS:
        for statement in policy_statements(role_of(resources, hook)):
            for resource in as_list(statement["Resource"]):
                if resource == "*":
                    assert set(as_list(statement["Action"])) <= allowed_star_actions, statement


def test_hook_roles_cannot_touch_other_functions_or_alarms(resources: dict[str, Any]) -> None:
    pre = statements_by_sid(role_of(resources, "PreTrafficHookFunction"))
    invoke = resolve_sub(
        pre["InvokePredictVersions"]["Resource"],
        {**PSEUDO_PARAMETERS, "PredictFunction.Arn": "arn:aws:lambda:us-east-1:1:function:p"},
    )
    assert invoke == "arn:aws:lambda:us-east-1:1:function:p:*"  # qualified: not $LATEST, not other functions
    actions = {a for s in policy_statements(role_of(resources, "PreTrafficHookFunction")) for a in as_list(s["Action"])}
    assert "cloudwatch:DeleteAlarms" not in actions  # the stack owns the alarms
