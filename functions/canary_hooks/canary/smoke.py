"""BeforeAllowTraffic: smoke-test the new version before any traffic shifts, then arm the version-aware
rollback alarms. The new version is invoked directly (not through the alias) with one payload-v2 event per
case: one text per label (sentiment_core.contract.SMOKE_TEXTS), one invalid body, one oversize body, and one
POST /predict/batch with the three texts and an empty one (three labels in order, one EMPTY_TEXT item; the
texts differ from the single cases' by a trailing space, so the answer cache cannot answer them).

Each answer is checked, and so is the invocation's log tail (Invoke with LogType=Tail returns its last
4 KB): it must hold the embedded-metric-format document with the version's Requests metric. A version that
answers well but publishes no metrics would be invisible to every rollback alarm; it fails here, before it
gets any traffic."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sentiment_core.contract import CORRELATION_HEADER, MAX_BODY_BYTES, SMOKE_API_ID, SMOKE_TEXTS, smoke_version

from .alarms import armed_alarms
from .observability import count_verdict, logger
from .release import CanaryError, Release
from .settings import ROLLBACK, HookSettings

SMOKE_SUBJECT = "codedeploy-smoke-test"
#: A serverless endpoint (the bootstrap model) starts a container for the first call after it has been idle:
#: seconds to tens of seconds, more than the function's SageMaker budget, so that call is a 503/504 of ours.
#: The first smoke case is repeated while it answers that, within this budget (the hook's timeout is 60 s; the
#: other cases take a few seconds once the endpoint is warm).
WARM_UP_BUDGET_S = 30.0
WARM_UP_PAUSE_S = 2.0
COLD_ENDPOINT_STATUSES = frozenset({503, 504})


@dataclass(frozen=True, slots=True)
class SmokeCase:
    name: str
    body: str
    status: int
    label: str | None = None  # for 200
    error_code: str | None = None  # for 4xx
    path: str = "/predict"
    batch: tuple[tuple[str, str], ...] = ()  # POST /predict/batch: ("label", l) or ("error", code) per item

    def passing_body(self) -> dict[str, Any]:
        """The smallest answer body that passes check_answer (the simulator's and the tests' healthy version)."""
        if self.batch:
            results = [{"index": i, "sentiment": v} for i, (kind, v) in enumerate(self.batch) if kind == "label"]
            errors = [
                {"index": i, "code": v, "message": "..."} for i, (kind, v) in enumerate(self.batch) if kind == "error"
            ]
            return {"results": results, "errors": errors}
        if self.status == 200:
            return {"sentiment": self.label}
        return {"error": {"code": self.error_code, "message": "...", "correlation_id": "x"}}


def smoke_cases() -> list[SmokeCase]:
    cases = [
        SmokeCase(f"label-{label}", json.dumps({"text": text}), 200, label=label) for label, text in SMOKE_TEXTS.items()
    ]
    cases.append(SmokeCase("invalid-body", '{"text": "an unterminated string', 400, error_code="INVALID_JSON"))
    oversize = json.dumps({"text": "a" * (MAX_BODY_BYTES + 100)})
    cases.append(SmokeCase("oversize-body", oversize, 413, error_code="PAYLOAD_TOO_LARGE"))
    # a trailing space: other texts for the answer cache (which the single cases just filled), so the batch
    # reaches the endpoint; the tokenizer drops it, so the labels are the single cases' labels
    texts = [*(f"{text} " for text in SMOKE_TEXTS.values()), ""]
    expected = (*(("label", label) for label in SMOKE_TEXTS), ("error", "EMPTY_TEXT"))
    cases.append(SmokeCase("batch", json.dumps({"texts": texts}), 200, path="/predict/batch", batch=expected))
    return cases


def smoke_event(case: SmokeCase, deployment_id: str, now: datetime) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event as the JWT authorizer passes it on, for the case's route."""
    correlation_id = f"smoke-{deployment_id}-{case.name}"
    return {
        "version": "2.0",
        "routeKey": f"POST {case.path}",
        "rawPath": case.path,
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": "codedeploy-pre-traffic-hook",
            CORRELATION_HEADER: correlation_id,
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": SMOKE_API_ID,  # marks the request as a smoke test in its metrics
            "authorizer": {"jwt": {"claims": {"sub": SMOKE_SUBJECT}, "scopes": []}},
            "domainName": "codedeploy-hook.invalid",
            "domainPrefix": "codedeploy-hook",
            "http": {
                "method": "POST",
                "path": case.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "codedeploy-pre-traffic-hook",
            },
            "requestId": correlation_id,
            "routeKey": f"POST {case.path}",
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
    if case.batch and _batch_items(body) != list(case.batch):
        problems.append(f"{case.name}: items {_batch_items(body)}, expected {list(case.batch)}")
    if case.error_code is not None and (body.get("error") or {}).get("code") != case.error_code:
        problems.append(
            f"{case.name}: error code {(body.get('error') or {}).get('code')!r}, expected {case.error_code!r}"
        )
    return problems


def _batch_items(body: Mapping[str, Any]) -> list[tuple[str, str]] | str:
    """A batch answer's items in index order: ("label", sentiment) or ("error", code); or what is wrong
    with its indexes (each of 0..n-1 exactly once across results and errors)."""
    results, errors = body.get("results"), body.get("errors")
    if not isinstance(results, list) or not isinstance(errors, list):
        return "results or errors missing"
    items: dict[Any, tuple[str, str]] = {}
    entries = [(r, "label", "sentiment") for r in results] + [(e, "error", "code") for e in errors]
    for entry, kind, key in entries:
        if not isinstance(entry, dict) or entry.get("index") in items:
            return "an item is not an object, or an index appears twice"
        items[entry.get("index")] = (kind, str(entry.get(key)))
    if set(items) != set(range(len(items))):
        return "the indexes are not 0..n-1"
    return [items[i] for i in range(len(items))]


def _json_documents(log: str) -> Iterator[dict[str, Any]]:
    """The JSON objects among the log lines; with the JSON log format a line the function printed may also
    arrive wrapped, as the string in the `message` field of Lambda's own record."""
    for line in log.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue  # text lines, and the first line of a tail cut at 4 KB
        if isinstance(document, dict) and isinstance(document.get("message"), str):
            yield from _json_documents(document["message"])
        if isinstance(document, dict):
            yield document


def publishes_request_metric(log: str, settings: HookSettings, version: str) -> bool:
    """Whether the log holds an EMF document with the Requests metric of this smoke request in exactly the
    namespace, stage and dimension set the canary alarms read (sentiment_api.observability
    add_version_dimension_set; a smoke request's FunctionVersion is smoke_version(version)). It shows that the
    version prints its metrics, not that CloudWatch ingests them (the alarms and the verdict see that)."""
    for document in _json_documents(log):
        metadata = document.get("_aws")
        if not isinstance(metadata, dict) or document.get("FunctionVersion") != smoke_version(version):
            continue
        if document.get("Stage") != settings.stage:
            continue
        for directive in metadata.get("CloudWatchMetrics") or []:
            if not isinstance(directive, dict) or directive.get("Namespace") != settings.namespace:
                continue
            names = {m.get("Name") for m in directive.get("Metrics") or [] if isinstance(m, dict)}
            dimension_sets = [d for d in directive.get("Dimensions") or [] if isinstance(d, list)]
            if "Requests" in names and any(sorted(d) == ["FunctionVersion", "Stage"] for d in dimension_sets):
                return True
    return False


@dataclass(frozen=True, slots=True)
class Invocation:
    answer: dict[str, Any]
    log_tail: str  # the last 4 KB of the invocation's log


class FunctionVersions(Protocol):
    def alias_version(self, function_name: str, alias: str) -> str: ...

    def invoke(self, function_name: str, version: str, event: Mapping[str, Any]) -> Invocation: ...


class LambdaFunctionVersions:
    def __init__(self, client: Any) -> None:
        self._client = client

    def alias_version(self, function_name: str, alias: str) -> str:
        return str(self._client.get_alias(FunctionName=function_name, Name=alias)["FunctionVersion"])

    def invoke(self, function_name: str, version: str, event: Mapping[str, Any]) -> Invocation:
        """Invokes one version directly (not through the alias), synchronously, with its log tail."""
        response = self._client.invoke(
            FunctionName=function_name,
            Qualifier=version,
            InvocationType="RequestResponse",
            LogType="Tail",
            Payload=json.dumps(event).encode(),
        )
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            raise CanaryError(f"version {version} failed: {response['FunctionError']}: {payload[:500]!r}")
        try:
            log_tail = base64.b64decode(response.get("LogResult") or "").decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            log_tail = ""
        return Invocation(json.loads(payload), log_tail)


def invoke_until_warm(
    release: Release,
    versions: FunctionVersions,
    event: Mapping[str, Any],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    budget_s: float = WARM_UP_BUDGET_S,
) -> Invocation:
    """The invocation of the first case, repeated while it answers 503/504 (a cold endpoint) and ``budget_s``
    allows: a warm endpoint costs no extra call, a cold one is waited for before anything is judged."""
    deadline = clock() + budget_s
    calls = 1
    invocation = versions.invoke(release.function_name, release.target_version, event)
    while invocation.answer.get("statusCode") in COLD_ENDPOINT_STATUSES and clock() + WARM_UP_PAUSE_S < deadline:
        sleep(WARM_UP_PAUSE_S)
        calls += 1
        invocation = versions.invoke(release.function_name, release.target_version, event)
    if calls > 1:
        logger.info("waited for the endpoint to warm up", extra={"calls": calls})
    return invocation


def run_smoke_tests(release: Release, settings: HookSettings, versions: FunctionVersions, now: datetime) -> list[str]:
    """Invokes the new version once per smoke case; the problems found (empty: all passed)."""
    problems: list[str] = []
    for number, case in enumerate(smoke_cases()):
        event = smoke_event(case, release.deployment_id, now)
        try:
            if number == 0:  # the first case reaches the endpoint: wait for a cold one (invoke_until_warm)
                invocation = invoke_until_warm(release, versions, event)
            else:
                invocation = versions.invoke(release.function_name, release.target_version, event)
        except CanaryError as exc:
            problems.append(f"{case.name}: {exc}")
            continue
        problems.extend(check_answer(case, event["headers"][CORRELATION_HEADER], invocation.answer))
        if not publishes_request_metric(invocation.log_tail, settings, release.target_version):
            problems.append(f"{case.name}: no Requests metric for version {release.target_version} in its log")
    return problems


def pre_traffic_check(
    release: Release,
    settings: HookSettings,
    versions: FunctionVersions,
    put_metric_alarm: Callable[..., Any],
    now: datetime,
) -> bool:
    stable = versions.alias_version(release.function_name, release.alias)
    if stable != release.current_version:
        # The alias is the truth about what serves traffic now; the AppSpec was written when the deployment
        # was created. Compare against what actually serves.
        logger.warning(
            "alias and AppSpec disagree on the stable version",
            extra={"alias_version": stable, "appspec_version": release.current_version},
        )
        release = Release(release.deployment_id, release.function_name, release.alias, stable, release.target_version)
    problems = run_smoke_tests(release, settings, versions, now)
    if problems:
        logger.error("smoke tests failed", extra={"problems": problems})
        count_verdict(ROLLBACK)
        return False
    for alarm in armed_alarms(settings, release):
        put_metric_alarm(**alarm)
    logger.info("smoke tests passed; canary alarms armed", extra={"alarms": list(settings.alarm_names)})
    return True
