"""Canary releases of the predict function: what the CodeDeploy hooks check, as plain functions.

A release is one CodeDeploy deployment that moves the alias `live` from the stable version to a new
version (SAM DeploymentPreference: Canary10Percent5Minutes). Each Lambda version pins its configuration,
the SageMaker endpoint included, so a canary of the function is also a canary of the model.

The rule (spec section 6): roll back when the new version's p95 latency exceeds the stable version's by
more than 30 %, or its error rate exceeds 2 %, over the 5-minute canary window.

* BeforeAllowTraffic (functions/pre_traffic): reads the stable version from the alias, smoke-tests the new
  version directly (one request per label, one invalid body, one oversize body), then writes the two
  version-aware rollback alarms (metric math over the per-version metrics of sentiment_common.api).
* AfterAllowTraffic (functions/post_traffic): the alarms need 5 breaching minutes and the canary phase
  lasts 5 minutes, so they can only fire at its very end. This hook judges the finished window itself
  from GetMetricData (after waiting for the metric lag) and fails the deployment, which rolls it back.
  Then it sets the alarms idle again (idle_alarms), so they never block the next release.

Both hooks learn everything about a release from the deployment's AppSpec (function, alias, current and
target version), never from the stack. A deployment created by CloudFormation (a `sam deploy`, or a stack
update from the retraining state machine) and one created directly with CreateDeployment on the same
deployment group (deploy/README.md) are therefore checked the same way.

Low traffic: with fewer than `min_requests` canary (or stable) requests in the window neither p95 nor a
2 % rate can be told apart from noise. The verdict is then `low_traffic_verdict` (template parameter
CanaryLowTrafficVerdict, default "promote": the smoke tests passed and the SLO burn-rate alarms keep
watching; a CanaryVerdicts{Verdict=inconclusive} metric and its alarm tell a human). Errors are never
ignored: the error rate is bounded below by errors / max(requests, min_requests), so a handful of failed
canary requests rolls back even at low traffic.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from .config import env_float, env_int
from .correlation import HEADER as CORRELATION_HEADER
from .errors import ConfigurationError
from .observability import count, logger
from .request import MAX_BODY_BYTES

PROMOTE, ROLLBACK, INCONCLUSIVE = "promote", "rollback", "inconclusive"
SUCCEEDED, FAILED = "Succeeded", "Failed"
# The FunctionVersion the rollback alarms watch between releases (template.yaml declares them with it): no
# version has that name, so they see no data and stay OK.
IDLE_VERSION = "no-release-in-progress"

# Texts every acceptable model classifies with high confidence (checked against the shipped model artefact
# in tests/unit/hooks): a new model that gets one of these wrong is not released.
SMOKE_TEXTS: dict[str, str] = {
    "positive": "Excellent quality and fast delivery. Highly recommended, I am very happy.",
    "neutral": "The meeting is scheduled for 3 pm in room 204.",
    "negative": "Awful experience, the worst service I have ever had.",
}
SMOKE_SUBJECT = "codedeploy-smoke-test"


class CanaryError(Exception):
    """The release cannot be checked (unreadable AppSpec, a deployment of some other function...)."""


# ---- configuration (read once at cold start) ----------------------------------------------------
@dataclass(frozen=True, slots=True)
class CanaryRule:
    max_latency_ratio: float = 1.3  # canary p95 / stable p95
    max_error_rate: float = 0.02  # canary (5xx + unhandled errors) / requests
    window_minutes: int = 5  # the canary phase of Canary10Percent5Minutes
    min_requests: int = 50  # per side, to judge at all
    low_traffic_verdict: str = PROMOTE


@dataclass(frozen=True, slots=True)
class HookSettings:
    function_name: str  # the predict function (physical name); a deployment of anything else is refused
    alias: str
    stage: str
    namespace: str
    service: str
    latency_alarm: str
    error_alarm: str
    alarm_topic_arn: str
    rule: CanaryRule = field(default_factory=CanaryRule)
    metric_lag_s: int = 180


def load_hook_settings(env: Mapping[str, str] | None = None) -> HookSettings:
    env = os.environ if env is None else env
    required = ("PREDICT_FUNCTION_NAME", "PREDICT_ALIAS", "STAGE", "POWERTOOLS_METRICS_NAMESPACE",
                "POWERTOOLS_SERVICE_NAME", "CANARY_LATENCY_ALARM", "CANARY_ERROR_ALARM", "ALARM_TOPIC_ARN")
    missing = [name for name in required if not env.get(name)]
    if missing:
        raise ConfigurationError(f"missing required environment variables: {', '.join(missing)}")
    low_traffic = env.get("CANARY_LOW_TRAFFIC_VERDICT", PROMOTE)
    if low_traffic not in (PROMOTE, ROLLBACK):
        raise ConfigurationError(f"CANARY_LOW_TRAFFIC_VERDICT={low_traffic!r} must be 'promote' or 'rollback'")
    rule = CanaryRule(
        max_latency_ratio=env_float(env, "CANARY_MAX_LATENCY_RATIO", 1.3, 1.0, 10.0),
        max_error_rate=env_float(env, "CANARY_MAX_ERROR_RATE", 0.02, 0.0, 1.0),
        window_minutes=env_int(env, "CANARY_WINDOW_MINUTES", 5, 1, 60),
        min_requests=env_int(env, "CANARY_MIN_REQUESTS", 50, 1, 1_000_000),
        low_traffic_verdict=low_traffic,
    )
    return HookSettings(
        function_name=env["PREDICT_FUNCTION_NAME"],
        alias=env["PREDICT_ALIAS"],
        stage=env["STAGE"],
        namespace=env["POWERTOOLS_METRICS_NAMESPACE"],
        service=env["POWERTOOLS_SERVICE_NAME"],
        latency_alarm=env["CANARY_LATENCY_ALARM"],
        error_alarm=env["CANARY_ERROR_ALARM"],
        alarm_topic_arn=env["ALARM_TOPIC_ARN"],
        rule=rule,
        metric_lag_s=env_int(env, "CANARY_METRIC_LAG_S", 180, 0, 600),
    )


# ---- the release: which versions a deployment moves -----------------------------------------------
@dataclass(frozen=True, slots=True)
class Release:
    deployment_id: str
    function_name: str
    alias: str
    current_version: str  # stable: what the alias pointed to when the deployment started
    target_version: str  # canary


def parse_appspec(deployment_id: str, content: str) -> Release:
    """The one Lambda resource of a Lambda AppSpec (JSON: CloudFormation writes JSON, and so must the
    retraining state machine; YAML would need a parser the Lambda runtime does not ship)."""
    try:
        document = json.loads(content)
        resources = [res for entry in document["Resources"] for res in entry.values()]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CanaryError(f"deployment {deployment_id}: the AppSpec is not Lambda AppSpec JSON ({exc})") from None
    lambdas = [res for res in resources if isinstance(res, dict) and res.get("Type") == "AWS::Lambda::Function"]
    if len(lambdas) != 1:
        raise CanaryError(f"deployment {deployment_id}: expected one AWS::Lambda::Function, found {len(lambdas)}")
    props = lambdas[0].get("Properties") or {}
    try:
        return Release(deployment_id, str(props["Name"]), str(props["Alias"]), str(props["CurrentVersion"]),
                       str(props["TargetVersion"]))
    except KeyError as exc:
        raise CanaryError(f"deployment {deployment_id}: the AppSpec lacks {exc.args[0]}") from None


def function_name_of(name_or_arn: str) -> str:
    """`name`, `arn:...:function:name` or `arn:...:function:name:qualifier` -> `name`."""
    parts = name_or_arn.split(":")
    if len(parts) >= 7 and parts[5] == "function":
        return parts[6]
    return name_or_arn


def check_release_target(release: Release, settings: HookSettings) -> None:
    if function_name_of(release.function_name) != function_name_of(settings.function_name):
        raise CanaryError(f"deployment {release.deployment_id} targets {release.function_name}, "
                          f"not the predict function {settings.function_name}")
    if release.alias != settings.alias:
        raise CanaryError(f"deployment {release.deployment_id} moves alias {release.alias}, not {settings.alias}")
    if release.target_version == release.current_version:
        raise CanaryError(f"deployment {release.deployment_id}: target and current version are both "
                          f"{release.target_version}")


class Deployments(Protocol):
    def release(self, deployment_id: str) -> Release: ...

    def report(self, deployment_id: str, execution_id: str, status: str) -> None: ...


def _without_nones(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nones(v) for k, v in value.items() if v is not None}
    return value


class CodeDeployDeployments:
    """CodeDeploy behind the two calls the hooks need. GetDeployment never returns the AppSpec content
    (documented: always null), so it is read with GetApplicationRevision."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def release(self, deployment_id: str) -> Release:
        info = self._client.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        revision = self._client.get_application_revision(
            applicationName=info["applicationName"], revision=_without_nones(info["revision"])
        )["revision"]
        content = (revision.get("appSpecContent") or revision.get("string") or {}).get("content")
        if not content:
            raise CanaryError(f"deployment {deployment_id}: revision {revision.get('revisionType')} has no AppSpec")
        return parse_appspec(deployment_id, content)

    def report(self, deployment_id: str, execution_id: str, status: str) -> None:
        self._client.put_lifecycle_event_hook_execution_status(
            deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
        )


def run_hook(event: Mapping[str, Any], deployments: Deployments, check: Callable[[Release], bool],
             settings: HookSettings) -> str:
    """A lifecycle hook: find the release, run the check, report Succeeded/Failed to CodeDeploy.

    Whatever goes wrong inside the check (an AWS error, a bug) is logged and reported as Failed: a safety
    net that cannot decide must not let the release through, and an unreported hook would hold the
    deployment for an hour. Reporting is the one thing left to fail loudly."""
    deployment_id, execution_id = event["DeploymentId"], event["LifecycleEventHookExecutionId"]
    logger.append_keys(deployment_id=deployment_id)
    try:
        release = deployments.release(deployment_id)
        check_release_target(release, settings)
        logger.append_keys(stable_version=release.current_version, canary_version=release.target_version)
        passed = check(release)
    except Exception:  # noqa: BLE001 - fail safe: any error in a check rolls the release back (see docstring)
        logger.exception("hook check failed; reporting Failed so that CodeDeploy rolls back")
        count("CanaryVerdicts", "Verdict", ROLLBACK)
        passed = False
    status = SUCCEEDED if passed else FAILED
    deployments.report(deployment_id, execution_id, status)
    logger.info("hook reported", extra={"status": status})
    return status


# ---- PreTraffic: smoke tests -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SmokeCase:
    name: str
    body: str
    status: int
    label: str | None = None  # for 200
    error_code: str | None = None  # for 4xx


def smoke_cases() -> list[SmokeCase]:
    cases = [SmokeCase(f"label-{label}", json.dumps({"text": text}), 200, label=label)
             for label, text in SMOKE_TEXTS.items()]
    cases.append(SmokeCase("invalid-body", '{"text": "an unterminated string', 400, error_code="INVALID_JSON"))
    oversize = json.dumps({"text": "a" * (MAX_BODY_BYTES + 100)})
    cases.append(SmokeCase("oversize-body", oversize, 413, error_code="PAYLOAD_TOO_LARGE"))
    return cases


def smoke_event(case: SmokeCase, deployment_id: str, now: datetime) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event as the JWT authorizer passes it on, for POST /predict."""
    correlation_id = f"smoke-{deployment_id}-{case.name}"
    return {
        "version": "2.0",
        "routeKey": "POST /predict",
        "rawPath": "/predict",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": "codedeploy-pre-traffic-hook",
            CORRELATION_HEADER: correlation_id,
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "codedeploy-hook",
            "authorizer": {"jwt": {"claims": {"sub": SMOKE_SUBJECT}, "scopes": []}},
            "domainName": "codedeploy-hook.invalid",
            "domainPrefix": "codedeploy-hook",
            "http": {"method": "POST", "path": "/predict", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "codedeploy-pre-traffic-hook"},
            "requestId": correlation_id,
            "routeKey": "POST /predict",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": case.body,
        "isBase64Encoded": False,
    }


def check_answer(case: SmokeCase, correlation_id: str, answer: Mapping[str, Any]) -> list[str]:
    """What is wrong with the function's answer to one smoke case (empty: nothing)."""
    status = answer.get("statusCode")
    if status != case.status:
        return [f"{case.name}: status {status}, expected {case.status}"]
    problems = []
    headers = {str(k).lower(): v for k, v in (answer.get("headers") or {}).items()}
    if headers.get(CORRELATION_HEADER) != correlation_id:
        problems.append(f"{case.name}: correlation id {headers.get(CORRELATION_HEADER)!r} not echoed")
    try:
        body = json.loads(answer.get("body") or "")
    except ValueError:
        return [*problems, f"{case.name}: body is not JSON"]
    if case.label is not None and body.get("sentiment") != case.label:
        problems.append(f"{case.name}: sentiment {body.get('sentiment')!r}, expected {case.label!r}")
    if case.error_code is not None and (body.get("error") or {}).get("code") != case.error_code:
        problems.append(f"{case.name}: error code {(body.get('error') or {}).get('code')!r}, "
                        f"expected {case.error_code!r}")
    return problems


class FunctionVersions(Protocol):
    def alias_version(self, function_name: str, alias: str) -> str: ...

    def invoke(self, function_name: str, version: str, event: Mapping[str, Any]) -> dict[str, Any]: ...


class LambdaFunctionVersions:
    def __init__(self, client: Any) -> None:
        self._client = client

    def alias_version(self, function_name: str, alias: str) -> str:
        return str(self._client.get_alias(FunctionName=function_name, Name=alias)["FunctionVersion"])

    def invoke(self, function_name: str, version: str, event: Mapping[str, Any]) -> dict[str, Any]:
        """Invokes one version directly (not through the alias), synchronously."""
        response = self._client.invoke(FunctionName=function_name, Qualifier=version,
                                       InvocationType="RequestResponse", Payload=json.dumps(event).encode())
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            raise CanaryError(f"version {version} failed: {response['FunctionError']}: {payload[:500]!r}")
        answer: dict[str, Any] = json.loads(payload)
        return answer


def run_smoke_tests(release: Release, versions: FunctionVersions, now: datetime) -> list[str]:
    """Invokes the new version once per smoke case; the problems found (empty: all passed)."""
    problems: list[str] = []
    for case in smoke_cases():
        event = smoke_event(case, release.deployment_id, now)
        try:
            answer = versions.invoke(release.function_name, release.target_version, event)
        except CanaryError as exc:
            problems.append(f"{case.name}: {exc}")
            continue
        problems.extend(check_answer(case, event["headers"][CORRELATION_HEADER], answer))
    return problems


# ---- the version-aware alarms (PutMetricAlarm) ----------------------------------------------------
def _metric(namespace: str, name: str, dimensions: Mapping[str, str], stat: str, period: int) -> dict[str, Any]:
    return {
        "Metric": {"Namespace": namespace, "MetricName": name,
                   "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()]},
        "Period": period,
        "Stat": stat,
    }


def version_dimensions(settings: HookSettings, version: str) -> dict[str, str]:
    """The dimension set record_request adds to the request metrics (sentiment_common.observability)."""
    return {"Stage": settings.stage, "FunctionVersion": version}


def lambda_error_dimensions(settings: HookSettings, version: str) -> dict[str, str]:
    """AWS/Lambda metrics of invocations through the alias, per executed version: unhandled errors and
    timeouts, which never reach record_request."""
    name = function_name_of(settings.function_name)
    return {"FunctionName": name, "Resource": f"{name}:{settings.alias}", "ExecutedVersion": version}


# Both alarms: 1-minute periods, 5 of 5 breaching (the rule's "sustained 5 minutes"); no data (the canary
# has no traffic yet, or no longer) is not a breach.
ALARM_PERIOD_S = 60


def latency_alarm(settings: HookSettings, release: Release) -> dict[str, Any]:
    """PutMetricAlarm arguments: canary p95 / stable p95 > max_latency_ratio for 5 consecutive minutes."""
    rule = settings.rule
    return {
        "AlarmName": settings.latency_alarm,
        "AlarmDescription": (
            f"Canary rollback: p95 latency of version {release.target_version} > {rule.max_latency_ratio} x "
            f"p95 of stable version {release.current_version}, 5 minutes in a row. Written by the PreTraffic "
            f"hook for deployment {release.deployment_id}. Runbook: 'Bad canary'."
        ),
        "ActionsEnabled": True,
        "AlarmActions": [settings.alarm_topic_arn],
        "Metrics": [
            {"Id": "canary_p95", "ReturnData": False,
             "MetricStat": _metric(settings.namespace, "Latency", version_dimensions(settings, release.target_version),
                                   "p95", ALARM_PERIOD_S)},
            {"Id": "stable_p95", "ReturnData": False,
             "MetricStat": _metric(settings.namespace, "Latency", version_dimensions(settings, release.current_version),
                                   "p95", ALARM_PERIOD_S)},
            {"Id": "ratio", "Expression": "canary_p95 / stable_p95", "Label": "canary p95 / stable p95",
             "ReturnData": True},
        ],
        "EvaluationPeriods": rule.window_minutes,
        "DatapointsToAlarm": rule.window_minutes,
        "Threshold": rule.max_latency_ratio,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }


# (5xx answers + unhandled errors) / (requests + unhandled errors): an unhandled error or timeout never
# reaches record_request, so it is neither a Request nor a 5xx there.
ERROR_RATE_EXPRESSION = "(FILL(errors, 0) + FILL(crashes, 0)) / (FILL(requests, 0) + FILL(crashes, 0))"


def error_rate_alarm(settings: HookSettings, release: Release) -> dict[str, Any]:
    """PutMetricAlarm arguments: canary error rate > max_error_rate for 5 consecutive minutes."""
    rule = settings.rule
    canary = version_dimensions(settings, release.target_version)
    return {
        "AlarmName": settings.error_alarm,
        "AlarmDescription": (
            f"Canary rollback: error rate (5xx answers + unhandled errors) of version {release.target_version} "
            f"> {rule.max_error_rate:.0%}, 5 minutes in a row. Written by the PreTraffic hook for deployment "
            f"{release.deployment_id}. Runbook: 'Bad canary'."
        ),
        "ActionsEnabled": True,
        "AlarmActions": [settings.alarm_topic_arn],
        "Metrics": [
            {"Id": "requests", "ReturnData": False,
             "MetricStat": _metric(settings.namespace, "Requests", canary, "Sum", ALARM_PERIOD_S)},
            {"Id": "errors", "ReturnData": False,
             "MetricStat": _metric(settings.namespace, "5xx", canary, "Sum", ALARM_PERIOD_S)},
            {"Id": "crashes", "ReturnData": False,
             "MetricStat": _metric("AWS/Lambda", "Errors",
                                   lambda_error_dimensions(settings, release.target_version), "Sum", ALARM_PERIOD_S)},
            {"Id": "rate", "Expression": ERROR_RATE_EXPRESSION, "Label": "canary error rate", "ReturnData": True},
        ],
        "EvaluationPeriods": rule.window_minutes,
        "DatapointsToAlarm": rule.window_minutes,
        "Threshold": rule.max_error_rate,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }


def idle_alarms(settings: HookSettings) -> list[dict[str, Any]]:
    """The rollback alarms between releases, as the template declares them. Left armed after a release they
    would keep watching the now-live version, and an incident on it would put them in ALARM, which makes
    CodeDeploy fail the next deployment at once, the fix included."""
    idle = Release("-", settings.function_name, settings.alias, IDLE_VERSION, IDLE_VERSION)
    alarms = [latency_alarm(settings, idle), error_rate_alarm(settings, idle)]
    for alarm in alarms:
        alarm["AlarmDescription"] = ("Canary rollback alarm, idle: no release in progress. The PreTraffic hook "
                                     "arms it with the versions of each release; the PostTraffic hook disarms it.")
    return alarms


def pre_traffic_check(release: Release, settings: HookSettings, versions: FunctionVersions,
                      put_metric_alarm: Callable[..., Any], now: datetime) -> bool:
    stable = versions.alias_version(release.function_name, release.alias)
    if stable != release.current_version:
        # The alias is the truth about what serves traffic now; the AppSpec was written when the deployment
        # was created. Compare against what actually serves.
        logger.warning("alias and AppSpec disagree on the stable version",
                       extra={"alias_version": stable, "appspec_version": release.current_version})
        release = Release(release.deployment_id, release.function_name, release.alias, stable,
                          release.target_version)
    problems = run_smoke_tests(release, versions, now)
    if problems:
        logger.error("smoke tests failed", extra={"problems": problems})
        count("CanaryVerdicts", "Verdict", ROLLBACK)
        return False
    for alarm in (latency_alarm(settings, release), error_rate_alarm(settings, release)):
        put_metric_alarm(**alarm)
    logger.info("smoke tests passed; canary alarms armed",
                extra={"alarms": [settings.latency_alarm, settings.error_alarm]})
    return True


# ---- PostTraffic: judging the canary window ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())


def canary_window(hook_started: datetime, minutes: int) -> Window:
    """CodeDeploy runs AfterAllowTraffic as soon as the canary phase ends: the window is the `minutes`
    whole minutes before the hook started (CloudWatch stores 1-minute buckets)."""
    end = hook_started.astimezone(UTC).replace(second=0, microsecond=0)
    return Window(end - timedelta(minutes=minutes), end)


@dataclass(frozen=True, slots=True)
class WindowStats:
    canary_requests: float
    canary_errors: float  # 5xx answers + unhandled errors
    canary_p95_ms: float | None
    stable_requests: float
    stable_p95_ms: float | None


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: str  # PROMOTE | ROLLBACK
    reason: str
    inconclusive: bool = False


def judge(stats: WindowStats, rule: CanaryRule) -> Verdict:
    """The spec's rule on one canary window. Errors first: they are decisive even at low traffic."""
    canary_total = stats.canary_requests
    error_rate_bound = stats.canary_errors / max(canary_total, rule.min_requests)
    if error_rate_bound > rule.max_error_rate:
        return Verdict(ROLLBACK, f"canary error rate {stats.canary_errors:g}/{canary_total:g} "
                                 f"> {rule.max_error_rate:.1%} (counting at least {rule.min_requests} requests)")
    if canary_total < rule.min_requests or stats.stable_requests < rule.min_requests:
        return Verdict(rule.low_traffic_verdict,
                       f"too little traffic to judge: canary {canary_total:g}, stable {stats.stable_requests:g} "
                       f"requests (< {rule.min_requests}); low-traffic verdict: {rule.low_traffic_verdict}",
                       inconclusive=True)
    if stats.canary_p95_ms is None or stats.stable_p95_ms is None or stats.stable_p95_ms <= 0:
        return Verdict(rule.low_traffic_verdict, "no p95 latency for one of the versions", inconclusive=True)
    ratio = stats.canary_p95_ms / stats.stable_p95_ms
    if ratio > rule.max_latency_ratio:
        return Verdict(ROLLBACK, f"canary p95 {stats.canary_p95_ms:.0f} ms = {ratio:.3f} x stable p95 "
                                 f"{stats.stable_p95_ms:.0f} ms > {rule.max_latency_ratio}")
    rate = stats.canary_errors / canary_total
    return Verdict(PROMOTE, f"canary p95 {ratio:.3f} x stable, error rate {rate:.2%}: within the rule")


def window_queries(settings: HookSettings, release: Release, window: Window) -> list[dict[str, Any]]:
    """GetMetricData queries: one datapoint per query covering the whole window."""
    period = window.seconds
    canary = version_dimensions(settings, release.target_version)
    stable = version_dimensions(settings, release.current_version)
    ns = settings.namespace
    return [
        {"Id": "canary_requests", "MetricStat": _metric(ns, "Requests", canary, "Sum", period)},
        {"Id": "canary_5xx", "MetricStat": _metric(ns, "5xx", canary, "Sum", period)},
        {"Id": "canary_crashes", "MetricStat": _metric(
            "AWS/Lambda", "Errors", lambda_error_dimensions(settings, release.target_version), "Sum", period)},
        {"Id": "canary_p95", "MetricStat": _metric(ns, "Latency", canary, "p95", period)},
        {"Id": "stable_requests", "MetricStat": _metric(ns, "Requests", stable, "Sum", period)},
        {"Id": "stable_p95", "MetricStat": _metric(ns, "Latency", stable, "p95", period)},
    ]


def _values(results: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for result in results:
        values.setdefault(result["Id"], []).extend(float(v) for v in result.get("Values", []))
    return values


def stats_from_results(results: Sequence[Mapping[str, Any]]) -> WindowStats:
    values = _values(results)

    def total(query_id: str) -> float:
        return math.fsum(values.get(query_id, []))

    def p95(query_id: str) -> float | None:
        # One datapoint for the window; should alignment split it, the worse one counts (p95s do not add).
        found = values.get(query_id, [])
        return max(found) if found else None

    crashes = total("canary_crashes")
    return WindowStats(
        canary_requests=total("canary_requests") + crashes,
        canary_errors=total("canary_5xx") + crashes,
        canary_p95_ms=p95("canary_p95"),
        stable_requests=total("stable_requests"),
        stable_p95_ms=p95("stable_p95"),
    )


class CloudWatchMetrics:
    def __init__(self, client: Any) -> None:
        self._client = client

    def get(self, queries: list[dict[str, Any]], window: Window) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": window.start, "EndTime": window.end}
        while True:
            page = self._client.get_metric_data(**kwargs)
            results.extend(page.get("MetricDataResults", []))
            token = page.get("NextToken")
            if not token:
                return results
            kwargs["NextToken"] = token


class MetricSource(Protocol):
    def get(self, queries: list[dict[str, Any]], window: Window) -> list[dict[str, Any]]: ...


def disarm_alarms(settings: HookSettings, put_metric_alarm: Callable[..., Any]) -> None:
    """Best effort: the verdict stands whether or not this works. An alarm left armed only matters if the
    live version misbehaves before the next release (idle_alarms), so a failure is logged, not fatal."""
    try:
        for alarm in idle_alarms(settings):
            put_metric_alarm(**alarm)
    except (ClientError, BotoCoreError):
        logger.warning("could not disarm the canary alarms; the next release re-arms them", exc_info=True)


def post_traffic_check(release: Release, settings: HookSettings, source: MetricSource, started: datetime,
                       now: Callable[[], datetime], sleep: Callable[[float], None],
                       put_metric_alarm: Callable[..., Any]) -> bool:
    window = canary_window(started, settings.rule.window_minutes)
    ready_at = window.end + timedelta(seconds=settings.metric_lag_s)
    wait_s = (ready_at - now()).total_seconds()
    if wait_s > 0:
        logger.info("waiting for the metric lag", extra={"wait_s": round(wait_s, 1)})
        sleep(wait_s)
    stats = stats_from_results(source.get(window_queries(settings, release, window), window))
    verdict = judge(stats, settings.rule)
    count("CanaryVerdicts", "Verdict", INCONCLUSIVE if verdict.inconclusive else verdict.decision)
    log = logger.warning if verdict.decision == ROLLBACK or verdict.inconclusive else logger.info
    log("canary verdict", extra={"decision": verdict.decision, "reason": verdict.reason,
                                 "inconclusive": verdict.inconclusive, "window_start": window.start.isoformat(),
                                 "window_end": window.end.isoformat(), "stats": asdict(stats)})
    disarm_alarms(settings, put_metric_alarm)
    return verdict.decision == PROMOTE


def utcnow() -> datetime:
    return datetime.now(UTC)
