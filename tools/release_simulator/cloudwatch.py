"""CloudWatch as the release simulator needs it: per-minute datapoints that become visible after a lag,
GetMetricData over a window, and alarm evaluation (metric math, M of N, missing data) through time.

Modelled after the CloudWatch User Guide ("Configuring how CloudWatch alarms treat missing data",
"Using metric math"); where the guide leaves a detail open, the choice is stated here and in
deploy/README.md:

* A datapoint of minute m is visible from m + 1 + lag (the metric publication lag, per namespace).
* An alarm is evaluated at every whole minute. It reads the last EvaluationPeriods + EVALUATION_RANGE_EXTRA
  periods (the "evaluation range"; CloudWatch reads more periods than EvaluationPeriods, how many is not
  documented). If at least EvaluationPeriods datapoints exist there, the most recent EvaluationPeriods of
  them are judged; otherwise the missing ones count as TreatMissingData says (only notBreaching is used).
  ALARM when at least DatapointsToAlarm of them breach.
* Metric math is evaluated at every timestamp where at least one of the alarm's metrics has a datapoint.
  As the metric math reference says for the arithmetic functions, a missing value counts as 0 there, and a
  division by zero drops the datapoint; FILL(x, v) is x, or v where x has none. IF(c, a, b) is a where c
  is non-zero, else b; AND / OR as in the reference. So a ratio of two sources with different lags reads
  the newer source against 0 in the newest minutes: the alarms avoid such ratios.
* p95 over several minutes (GetMetricData with a period of the whole window) is the request-weighted
  95th percentile of the minutes' p95 values: the simulator has no per-request latencies.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EVALUATION_RANGE_EXTRA = 3


def metric_key(metric: Mapping[str, Any]) -> tuple[str, str, frozenset[tuple[str, str]]]:
    """A metric's identity: namespace, name and dimension set (as GetMetricData and alarms name it)."""
    dimensions = frozenset((d["Name"], d["Value"]) for d in metric.get("Dimensions", []))
    return metric["Namespace"], metric["MetricName"], dimensions


@dataclass(slots=True)
class Datum:
    total: float = 0.0  # Sum
    weight: float = 0.0  # how many samples (requests) the p95 stands for
    p95: float | None = None


@dataclass
class MetricStore:
    """What was published, minute by minute, and when each namespace's datapoints become visible."""

    lag_min: Mapping[str, int]  # namespace -> minutes after the end of the datapoint's minute
    data: dict[tuple[str, str, frozenset[tuple[str, str]]], dict[int, Datum]] = field(default_factory=dict)

    def add(self, namespace: str, name: str, dimensions: Mapping[str, str], minute: int, value: float) -> None:
        datum = self._datum(namespace, name, dimensions, minute)
        datum.total += value

    def add_latency(
        self, namespace: str, name: str, dimensions: Mapping[str, str], minute: int, p95: float, samples: float
    ) -> None:
        datum = self._datum(namespace, name, dimensions, minute)
        if datum.p95 is None or datum.weight == 0:
            datum.p95, datum.weight = p95, samples
        else:  # two sources in one minute (the smoke test and traffic): the worse one counts
            datum.p95, datum.weight = max(datum.p95, p95), datum.weight + samples

    def _datum(self, namespace: str, name: str, dimensions: Mapping[str, str], minute: int) -> Datum:
        key = (namespace, name, frozenset(dimensions.items()))
        return self.data.setdefault(key, {}).setdefault(minute, Datum())

    def visible(self, key: tuple[str, str, frozenset[tuple[str, str]]], now_min: float) -> dict[int, Datum]:
        lag = self.lag_min.get(key[0], 0)
        return {m: d for m, d in self.data.get(key, {}).items() if m + 1 + lag <= now_min + 1e-9}

    def series(self, metric_stat: Mapping[str, Any], now_min: float, minutes: range) -> dict[int, float]:
        """One value per 1-minute period in `minutes` that has a visible datapoint (Sum or p95)."""
        if metric_stat["Period"] != 60:
            raise ValueError(f"only 1-minute alarm periods are modelled, not {metric_stat['Period']} s")
        visible = self.visible(metric_key(metric_stat["Metric"]), now_min)
        stat = metric_stat["Stat"]
        values: dict[int, float] = {}
        for minute in minutes:
            datum = visible.get(minute)
            if datum is None:
                continue
            if stat == "Sum":
                values[minute] = datum.total
            elif stat == "p95" and datum.p95 is not None:
                values[minute] = datum.p95
            elif stat != "p95":
                raise ValueError(f"statistic {stat} is not modelled")
        return values

    def window_value(self, metric_stat: Mapping[str, Any], now_min: float, minutes: range) -> list[float]:
        """GetMetricData with one period covering `minutes`: [] when nothing is visible there."""
        visible = self.visible(metric_key(metric_stat["Metric"]), now_min)
        data = [visible[m] for m in minutes if m in visible]
        if not data:
            return []
        if metric_stat["Stat"] == "Sum":
            return [math.fsum(d.total for d in data)]
        if metric_stat["Stat"] == "p95":
            return [weighted_p95([(d.p95, d.weight) for d in data if d.p95 is not None])]
        raise ValueError(f"statistic {metric_stat['Stat']} is not modelled")


def weighted_p95(values: Sequence[tuple[float, float]]) -> float:
    total = math.fsum(w for _, w in values)
    running = 0.0
    for value, weight in sorted(values):
        running += weight
        if running >= 0.95 * total:
            return value
    return max(v for v, _ in values)


# ---- metric math ---------------------------------------------------------------------------------------------
_BINARY: dict[type[ast.operator], Callable[[float, float], float | None]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: None if b == 0 else a / b,
}
_COMPARE: dict[type[ast.cmpop], Callable[[float, float], bool]] = {
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Eq: lambda a, b: a == b,
}


def evaluate(expression: str, values: Mapping[str, float | None]) -> float | None:
    """One timestamp of a metric math expression (the subset the rollback alarms use); None: no datapoint.
    Anything outside the subset raises, so that an alarm the simulator cannot read fails loudly."""

    def walk(node: ast.AST) -> float | None:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name):
            value = values[node.id]
            return 0.0 if value is None else value  # a missing value counts as 0 (not inside FILL)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = walk(node.left), walk(node.right)
            return None if left is None or right is None else _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
            left, right = walk(node.left), walk(node.comparators[0])
            return None if left is None or right is None else float(_COMPARE[type(node.ops[0])](left, right))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            if node.func.id == "FILL" and len(node.args) == 2 and isinstance(node.args[0], ast.Name):
                value = values[node.args[0].id]
                return walk(node.args[1]) if value is None else value
            if node.func.id == "IF" and len(node.args) == 3:
                condition = walk(node.args[0])
                if condition is None:
                    return None
                return walk(node.args[1]) if condition != 0 else walk(node.args[2])
        if isinstance(node, ast.BoolOp):
            operands = [walk(value) for value in node.values]
            if any(v is None for v in operands):
                return None
            combine = all if isinstance(node.op, ast.And) else any
            return float(combine(v != 0 for v in operands))
        raise ValueError(f"metric math not modelled: {ast.unparse(node)!r} in {expression!r}")

    python = " ".join(expression.replace(" AND ", " and ").replace(" OR ", " or ").split())
    return walk(ast.parse(python, mode="eval"))


# ---- alarms ----------------------------------------------------------------------------------------------------
def alarm_datapoints(alarm: Mapping[str, Any], store: MetricStore, now_min: int) -> list[tuple[int, float]]:
    """The alarm's datapoints in its evaluation range, oldest first, as visible at `now_min`."""
    periods = alarm["EvaluationPeriods"] + EVALUATION_RANGE_EXTRA
    minutes = range(now_min - periods, now_min)
    series = {q["Id"]: store.series(q["MetricStat"], now_min, minutes) for q in alarm["Metrics"] if "MetricStat" in q}
    (returned,) = [q for q in alarm["Metrics"] if q.get("ReturnData", True)]
    timestamps = sorted(set().union(*(s.keys() for s in series.values())))
    points = []
    for minute in timestamps:
        if "MetricStat" in returned:
            value = series[returned["Id"]].get(minute)
        else:
            value = evaluate(returned["Expression"], {qid: s.get(minute) for qid, s in series.items()})
        if value is not None:
            points.append((minute, value))
    return points


def breaches(alarm: Mapping[str, Any], value: float) -> bool:
    operator = alarm["ComparisonOperator"]
    threshold = alarm["Threshold"]
    if operator == "GreaterThanThreshold":
        return value > threshold
    if operator == "GreaterThanOrEqualToThreshold":
        return value >= threshold
    raise ValueError(f"comparison {operator} not modelled")


def in_alarm(alarm: Mapping[str, Any], store: MetricStore, now_min: int) -> bool:
    if alarm.get("TreatMissingData") != "notBreaching":
        raise ValueError("only TreatMissingData notBreaching is modelled")
    points = alarm_datapoints(alarm, store, now_min)
    judged = points[-alarm["EvaluationPeriods"] :]  # fewer: the missing ones are not breaching
    return sum(breaches(alarm, v) for _, v in judged) >= alarm["DatapointsToAlarm"]
