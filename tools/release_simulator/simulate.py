"""One release, minute by minute: CodeDeploy's time-based canary around the real hooks and alarms.

What is real: the deployment group, the deployment configuration and the hooks' environment come from the
transformed template (samtranslator, with the stage's samconfig.toml parameters); the PreTraffic and
PostTraffic hooks are canary.release.run_hook with pre_traffic_check / post_traffic_check, and the alarms
they evaluate are the PutMetricAlarm calls the PreTraffic hook makes. What is modelled: CodeDeploy (below),
CloudWatch (cloudwatch.py), the Lambda client of the smoke test and the traffic (scenarios.py).

CodeDeploy, as the model has it (AWS CodeDeploy User Guide, "Working with deployment configurations":
TimeBasedCanary; "Monitoring deployments with CloudWatch alarms"; "AppSpec 'hooks' section" for Lambda):
* minute 0: BeforeAllowTraffic (the PreTraffic hook) runs; Failed -> rollback, the new version never
  served. It takes seconds, and CodeDeploy shifts CanaryPercentage of the traffic seconds after it
  succeeds: both in minute 0 (the smoke requests are published under their own version value,
  sentiment_core.contract.smoke_version, so they do not count as canary traffic either way).
* after CanaryInterval minutes all of the traffic; then AfterAllowTraffic (the PostTraffic hook) runs;
  Failed -> rollback.
* the deployment group's alarms are watched for the whole deployment, hooks included; CodeDeploy sees an
  alarm's ALARM state at most CODEDEPLOY_ALARM_POLL_MIN minutes after the alarm changed (not documented;
  assumed) and then shifts the alias back (rollback begins).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from .cloudwatch import MetricStore, in_alarm
from .scenarios import HEALTHY, STABLE_P95_MS, Behaviour, Scenario

REPO_ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SentimentApi")  # read at import by the hooks' Metrics
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "sentiment-api")

from canary import alarms as canary_alarms  # noqa: E402 - after the environment the hooks import with
from canary.cloudwatch import post_traffic_check  # noqa: E402
from canary.observability import logger as hook_logger  # noqa: E402
from canary.release import FAILED, SUCCEEDED, Release, run_hook  # noqa: E402
from canary.settings import HookSettings  # noqa: E402
from canary.smoke import LambdaFunctionVersions, pre_traffic_check, smoke_cases  # noqa: E402
from local_stack.template import resolve  # noqa: E402
from sentiment_core.contract import CORRELATION_HEADER, smoke_version  # noqa: E402

from tools.transform_template import load_template, parameter_values, transform  # noqa: E402

CODEDEPLOY_ALARM_POLL_MIN = 1
BASE_TIME = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
STABLE_VERSION, CANARY_VERSION = "41", "42"
ACCOUNT, REGION = "123456789012", "us-east-1"


# ---- the stack, from the transformed template ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReleaseConfig:
    stage: str
    stack_name: str
    canary_percent: float
    canary_interval_min: int
    watched_alarms: tuple[str, ...]
    rollback_on_alarm: bool
    pre_settings: HookSettings
    post_settings: HookSettings


def samconfig_parameters(stage: str, path: Path = REPO_ROOT / "samconfig.toml") -> tuple[str, dict[str, str]]:
    """The stack name and parameter overrides `sam deploy --config-env <stage>` uses."""
    deploy = tomllib.loads(path.read_text("utf-8"))[stage]["deploy"]["parameters"]
    overrides = dict(item.split("=", 1) for item in deploy.get("parameter_overrides", []))
    return deploy["stack_name"], overrides


def load_config(stage: str, template_path: Path = REPO_ROOT / "template.yaml") -> ReleaseConfig:
    stack_name, overrides = samconfig_parameters(stage)
    resources = transform(template_path, overrides)["Resources"]
    parameters = parameter_values(load_template(template_path), overrides)
    refs = {k: str(v) for k, v in parameters.items() if not isinstance(v, list)}
    refs |= {"AWS::StackName": stack_name, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
    for logical_id, resource in resources.items():
        physical = f"{stack_name}-{logical_id}"
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            physical = resolve(resource["Properties"]["AlarmName"], refs)
        refs.setdefault(logical_id, physical)
        refs.setdefault(f"{logical_id}.Arn", f"arn:aws:simulated:{REGION}:{ACCOUNT}:{physical}")

    group = resources["PredictFunctionDeploymentGroup"]["Properties"]
    config_ref = group["DeploymentConfigName"]["Ref"]
    canary = resources[config_ref]["Properties"]["TrafficRoutingConfig"]
    if canary["Type"] != "TimeBasedCanary":
        raise ValueError(f"the simulator models TimeBasedCanary, not {canary['Type']}")
    alarms = group.get("AlarmConfiguration") or {}
    watched = tuple(resolve(a["Name"], refs) for a in alarms.get("Alarms", [])) if alarms.get("Enabled") else ()

    def settings(hook: str) -> HookSettings:
        variables = resources[hook]["Properties"]["Environment"]["Variables"]
        return HookSettings.from_env({name: resolve(value, refs) for name, value in variables.items()})

    return ReleaseConfig(
        stage=stage,
        stack_name=stack_name,
        canary_percent=float(resolve(canary["TimeBasedCanary"]["CanaryPercentage"], refs)),
        canary_interval_min=int(resolve(canary["TimeBasedCanary"]["CanaryInterval"], refs)),
        watched_alarms=watched,
        rollback_on_alarm="DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"],
        pre_settings=settings("PreTrafficHookFunction"),
        post_settings=settings("PostTrafficHookFunction"),
    )


# ---- the AWS edge the hooks call ----------------------------------------------------------------------------------
class FakeDeployments:
    def __init__(self, release: Release) -> None:
        self._release = release
        self.reports: list[str] = []

    def release(self, deployment_id: str) -> Release:
        return self._release

    def report(self, deployment_id: str, execution_id: str, status: str) -> None:
        self.reports.append(status)


class FakeLambdaClient:
    """GetAlias and Invoke(LogType=Tail) of the predict function, answering the smoke cases as the scenario's
    new version would: each invocation is a request of the version (errors spread evenly, like every
    other figure of the simulator), and what it publishes lands in the metric store."""

    def __init__(self, simulation: Simulation) -> None:
        self._sim = simulation
        self._cases = {case.name: case for case in smoke_cases()}

    def get_alias(self, FunctionName: str, Name: str) -> dict[str, Any]:
        return {"FunctionVersion": STABLE_VERSION}

    def invoke(self, FunctionName: str, Qualifier: str, Payload: bytes, **_: Any) -> dict[str, Any]:
        event = json.loads(Payload)
        correlation_id = event["headers"][CORRELATION_HEADER]
        case = self._cases[_case_of(correlation_id, self._cases)]
        behaviour = self._sim.scenario.behaviour(None)
        if behaviour.crashes:
            crash = b'{"errorType": "Runtime.ImportModuleError", "errorMessage": "simulated crash"}'
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(crash), "LogResult": ""}
        failed = self._sim.next_canary_request_fails(behaviour)
        status = 502 if failed else case.status
        body: dict[str, Any]
        if failed:
            body = {"error": {"code": "MODEL_ERROR", "message": "simulated", "correlation_id": correlation_id}}
        else:
            body = case.passing_body()
        answer = {"statusCode": status, "headers": {CORRELATION_HEADER: correlation_id}, "body": json.dumps(body)}
        log = ""
        if behaviour.publishes_metrics:
            self._sim.publish_requests(0, smoke_version(Qualifier), 1.0, status, behaviour)
            log = json.dumps(_emf_document(self._sim.pre_settings, Qualifier, status)) + "\n"
        return {
            "StatusCode": 200,
            "Payload": io.BytesIO(json.dumps(answer).encode()),
            "LogResult": base64.b64encode(log.encode()).decode(),
        }


def _case_of(correlation_id: str, cases: Mapping[str, Any]) -> str:
    (name,) = [name for name in cases if correlation_id.endswith(f"-{name}")]
    return name


def _emf_document(settings: HookSettings, version: str, status: int) -> dict[str, Any]:
    """The request metrics of a smoke request as sentiment_api.http.record_request publishes them."""
    return {
        "_aws": {
            "Timestamp": int(BASE_TIME.timestamp() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": settings.namespace,
                    "Dimensions": [["Stage", "service"], ["Stage", "FunctionVersion"]],
                    "Metrics": [
                        {"Name": "Requests", "Unit": "Count"},
                        {"Name": "Latency", "Unit": "Milliseconds"},
                        {"Name": "4xx", "Unit": "Count"},
                        {"Name": "5xx", "Unit": "Count"},
                    ],
                }
            ],
        },
        "Stage": settings.stage,
        "service": "sentiment-api",
        "FunctionVersion": smoke_version(version),
        "Requests": 1,
        "Latency": STABLE_P95_MS,
        "4xx": int(400 <= status < 500),
        "5xx": int(status >= 500),
    }


# ---- the simulation ---------------------------------------------------------------------------------------------
@dataclass
class Result:
    outcome: str  # rolled_back | promoted
    max_share_pct: float
    exposure_pct_min: float
    decided_at_min: float
    reason: str

    def line(self, name: str) -> str:
        return (
            f"scenario={name} outcome={self.outcome} max_share_pct={_number(self.max_share_pct)} "
            f"exposure_pct_min={_number(self.exposure_pct_min)} decided_at_min={_number(self.decided_at_min)}"
        )


def _number(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


@dataclass
class Simulation:
    config: ReleaseConfig
    scenario: Scenario
    requests_per_s: float
    lag_min: int  # request metrics (EMF through CloudWatch Logs)
    lambda_lag_min: int  # AWS/Lambda platform metrics
    now_min: float = 0.0
    store: MetricStore = field(init=False)
    armed: dict[str, dict[str, Any]] = field(default_factory=dict)
    canary_requests_seen: float = 0.0
    published_through: int = 0  # minutes [0, published_through) are published
    alarm_seen_at: int | None = None
    alarm_name: str | None = None
    rollback_at: float | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        namespace = self.config.pre_settings.namespace
        self.store = MetricStore({namespace: self.lag_min, "AWS/Lambda": self.lambda_lag_min})

    @property
    def pre_settings(self) -> HookSettings:
        return self.config.pre_settings

    # -- traffic ---------------------------------------------------------------------------------------------
    def share(self, minute: int) -> float:
        if minute < 0 or (self.rollback_at is not None and minute >= self.rollback_at):
            return 0.0
        if minute < self.config.canary_interval_min:
            return self.config.canary_percent / 100
        return 1.0

    def next_canary_request_fails(self, behaviour: Behaviour) -> bool:
        """Request i of the new version fails when the running count of expected errors passes an integer."""
        before = self.canary_requests_seen
        self.canary_requests_seen += 1
        return math.floor(self.canary_requests_seen * behaviour.error_rate) > math.floor(before * behaviour.error_rate)

    def publish_requests(self, minute: int, version: str, requests: float, status: int | None, b: Behaviour) -> None:
        """Request metrics (record_request's per-version dimension set) of `requests` requests in a minute;
        `status` for one smoke request, None for traffic with the behaviour's rates."""
        settings, ns = self.pre_settings, self.pre_settings.namespace
        dimensions = canary_alarms.version_dimensions(settings, version)
        errors = requests * b.error_rate if status is None else float(status >= 500)
        client_errors = requests * b.client_error_rate if status is None else float(400 <= status < 500)
        self.store.add(ns, "Requests", dimensions, minute, requests)
        self.store.add(ns, "5xx", dimensions, minute, errors)
        self.store.add(ns, "4xx", dimensions, minute, client_errors)
        self.store.add_latency(ns, "Latency", dimensions, minute, STABLE_P95_MS * b.p95_factor, requests)

    def publish_minute(self, minute: int) -> None:
        total = self.requests_per_s * 60
        share = self.share(minute)
        canary_behaviour = self.scenario.behaviour(minute)
        for version, requests, behaviour in (
            (STABLE_VERSION, total * (1 - share), HEALTHY),
            (CANARY_VERSION, total * share, canary_behaviour),
        ):
            if requests <= 0:
                continue
            through_alias = canary_alarms.lambda_error_dimensions(self.pre_settings, version)
            self.store.add("AWS/Lambda", "Invocations", through_alias, minute, requests)
            self.store.add("AWS/Lambda", "Errors", through_alias, minute, requests if behaviour.crashes else 0.0)
            if behaviour.publishes_metrics and not behaviour.crashes:
                self.publish_requests(minute, version, requests, None, behaviour)

    # -- time --------------------------------------------------------------------------------------------------
    def now(self) -> datetime:
        return BASE_TIME + timedelta(minutes=self.now_min)

    def advance_to(self, target_min: float) -> None:
        """Time passes: minutes are published as they end, alarms are evaluated at each whole minute and
        CodeDeploy acts on them."""
        while self.now_min < target_min - 1e-9:
            boundary = math.floor(self.now_min + 1e-9) + 1
            self.now_min = min(boundary, target_min)
            if abs(self.now_min - boundary) > 1e-9:
                continue
            while self.published_through < boundary:
                self.publish_minute(self.published_through)
                self.published_through += 1
            self._watch_alarms(boundary)

    def sleep(self, seconds: float) -> None:
        self.advance_to(self.now_min + seconds / 60)

    def _watch_alarms(self, minute: int) -> None:
        if self.rollback_at is not None or not self.config.rollback_on_alarm:
            return
        if self.alarm_seen_at is None:
            for name in self.config.watched_alarms:
                definition = self.armed.get(name)
                if definition is not None and in_alarm(definition, self.store, minute):
                    self.alarm_seen_at, self.alarm_name = minute, name
                    break
        if self.alarm_seen_at is not None and minute >= self.alarm_seen_at + CODEDEPLOY_ALARM_POLL_MIN:
            self.rollback_at = minute
            self.reason = f"alarm {self.alarm_name} (ALARM at minute {self.alarm_seen_at})"

    def put_metric_alarm(self, **alarm: Any) -> None:
        self.armed[alarm["AlarmName"]] = alarm

    # -- the release -------------------------------------------------------------------------------------------
    def run(self) -> Result:
        release = Release("d-SIMULATED", self.pre_settings.function_name, "live", STABLE_VERSION, CANARY_VERSION)
        event = {"DeploymentId": release.deployment_id, "LifecycleEventHookExecutionId": "hook-execution"}
        with _hook_output() as log:
            pre = partial(
                pre_traffic_check,
                settings=self.pre_settings,
                versions=LambdaFunctionVersions(FakeLambdaClient(self)),
                put_metric_alarm=self.put_metric_alarm,
                now=self.now(),
            )
            if run_hook(event, FakeDeployments(release), pre, self.pre_settings) == FAILED:
                self.rollback_at = 0.0
                return self._result(f"PreTraffic hook: {_last_problem(log)}")
            post_starts = self.config.canary_interval_min
            self.advance_to(post_starts)
            if self.rollback_at is not None:
                return self._result(self.reason)
            settings = self.config.post_settings
            post = partial(
                post_traffic_check,
                settings=settings,
                source=_MetricSource(self),
                started=self.now(),
                now=self.now,
                sleep=self.sleep,
                put_metric_alarm=self.put_metric_alarm,
            )
            status = run_hook(event, FakeDeployments(release), post, settings)
            if self.rollback_at is not None:  # an alarm during the hook's wait: CodeDeploy rolled back first
                return self._result(self.reason)
            if status == SUCCEEDED:
                return self._result(f"PostTraffic hook: {_last_verdict(log)}", promoted=True)
            self.rollback_at = self.now_min
            return self._result(f"PostTraffic hook: {_last_verdict(log)}")

    def _result(self, reason: str, promoted: bool = False) -> Result:
        decided = self.now_min if promoted else float(self.rollback_at or 0.0)
        shares = [(m, self.share(m)) for m in range(math.ceil(decided))]  # what it held before the decision
        exposure = math.fsum(share * 100 * (min(m + 1, decided) - m) for m, share in shares)
        return Result(
            outcome="promoted" if promoted else "rolled_back",
            max_share_pct=max((share for _, share in shares), default=0.0) * 100,
            exposure_pct_min=exposure,
            decided_at_min=decided,
            reason=reason,
        )


class _MetricSource:
    """GetMetricData for the PostTraffic hook, from what is visible now."""

    def __init__(self, simulation: Simulation) -> None:
        self._sim = simulation

    def get(self, queries: list[dict[str, Any]], window: Any) -> list[dict[str, Any]]:
        start = round((window.start - BASE_TIME).total_seconds() / 60)
        end = round((window.end - BASE_TIME).total_seconds() / 60)
        minutes = range(start, end)
        return [
            {"Id": q["Id"], "Values": self._sim.store.window_value(q["MetricStat"], self._sim.now_min, minutes)}
            for q in queries
        ]


@contextlib.contextmanager
def _hook_output() -> Any:
    """The hooks' JSON log (kept, to say why) and their EMF verdict metric (dropped): not the simulator's
    output."""
    buffer = io.StringIO()
    handler = hook_logger.registered_handler
    previous = handler.setStream(buffer) if isinstance(handler, logging.StreamHandler) else None
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield buffer
    finally:
        if isinstance(handler, logging.StreamHandler) and previous is not None:
            handler.setStream(previous)


def _records(log: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.getvalue().splitlines() if line.startswith("{")]


def _last_problem(log: io.StringIO) -> str:
    for record in reversed(_records(log)):
        if record.get("problems"):
            first = str(record["problems"][0])
            return first if len(first) <= 90 else f"{first[:87]}..."
        if record.get("level") == "ERROR":
            return str(record.get("message"))
    return "failed"


def _last_verdict(log: io.StringIO) -> str:
    for record in reversed(_records(log)):
        if record.get("message") == "canary verdict":
            return str(record.get("reason"))
    return "no verdict logged"
