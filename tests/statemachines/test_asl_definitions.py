"""Static checks of statemachines/*.asl.json: the asl-validator (npm, pinned in package-lock.json), every
transition target exists, every state is reachable, every Task retries and catches, waits are configurable,
and the Lambda error names the definitions react to exist in the code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.statemachines.conftest import ROOT, STATEMACHINES

DEFINITIONS = sorted(STATEMACHINES.glob("*.asl.json"))
VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"
TERMINAL = {"Succeed", "Fail"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text("utf-8"))


def machines(definition: dict[str, Any], where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """The definition and every nested state machine (Map ItemProcessor / Iterator, Parallel branches)."""
    yield where or "top", definition
    for name, state in definition["States"].items():
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from machines(state[key], f"{where}{name}.{key}/")
        for i, branch in enumerate(state.get("Branches", [])):
            yield from machines(branch, f"{where}{name}.Branches[{i}]/")


def targets(state: dict[str, Any]) -> set[str]:
    found = {state[k] for k in ("Next", "Default") if k in state}
    found |= {c["Next"] for c in state.get("Choices", [])}
    found |= {c["Next"] for c in state.get("Catch", [])}
    return found


def test_there_are_three_definitions() -> None:
    assert [p.name for p in DEFINITIONS] == ["governance.asl.json", "jobs.asl.json", "retrain.asl.json"]


def test_asl_validator() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed: the asl-validator (package.json) cannot run")
    if not VALIDATOR.exists():
        subprocess.run(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=300,
        )
    command = [str(VALIDATOR)]
    for path in DEFINITIONS:
        command += ["--json-path", str(path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("is valid") == len(DEFINITIONS), result.stdout


def test_the_validator_rejects_a_broken_definition(tmp_path: Path) -> None:
    """Guard against a validator call that checks nothing."""
    if not VALIDATOR.exists():
        pytest.skip("asl-validator not installed (see test_asl_validator)")
    broken = load(DEFINITIONS[0])
    broken["States"]["Initialize"]["Next"] = 42
    path = tmp_path / "broken.asl.json"
    path.write_text(json.dumps(broken))
    result = subprocess.run(
        [str(VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_every_transition_target_exists_and_every_state_is_reachable(path: Path) -> None:
    for where, machine in machines(load(path)):
        states = machine["States"]
        assert machine["StartAt"] in states, where
        for name, state in states.items():
            missing = targets(state) - set(states)
            assert not missing, f"{where}{name} -> {missing}"
            if state["Type"] not in TERMINAL | {"Choice"}:
                assert ("Next" in state) != bool(state.get("End")), f"{where}{name}: exactly one of Next/End"
            if state["Type"] == "Choice":
                assert state.get("Default"), f"{where}{name}: a Choice without Default can fail at run time"
        reachable, todo = set(), [machine["StartAt"]]
        while todo:
            name = todo.pop()
            if name not in reachable:
                reachable.add(name)
                todo.extend(targets(states[name]))
        assert reachable == set(states), f"{where}: unreachable {set(states) - reachable}"


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_every_task_retries_and_catches_everything(path: Path) -> None:
    for where, machine in machines(load(path)):
        for name, state in machine["States"].items():
            if state["Type"] in ("Task", "Map", "Parallel"):
                assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])), f"{where}{name}"
            if state["Type"] == "Task":
                assert state.get("Retry"), f"{where}{name} has no Retry"
                for retrier in state["Retry"]:
                    assert retrier["BackoffRate"] >= 1.5 and retrier["MaxAttempts"] >= 2, f"{where}{name}"


#: The definitions that poll (Wait states); the jobs state machine waits only in its tasks' Retry.
POLLING = [path for path in DEFINITIONS if path.name != "jobs.asl.json"]


@pytest.mark.parametrize("path", POLLING, ids=lambda p: p.name)
def test_waits_come_from_the_configuration(path: Path) -> None:
    waits = {n: s for _, m in machines(load(path)) for n, s in m["States"].items() if s["Type"] == "Wait"}
    assert waits
    for name, state in waits.items():
        assert "Seconds" not in state, f"{name}: hard-coded seconds; use SecondsPath into $.config"
        assert state["SecondsPath"].startswith("$.config."), name


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_failures_end_in_one_fail_state_with_error_and_cause_from_the_state(path: Path) -> None:
    states = load(path)["States"]
    fails = {n: s for n, s in states.items() if s["Type"] == "Fail" and "ErrorPath" in s}
    assert len(fails) == 1
    (state,) = fails.values()
    assert (state["ErrorPath"], state["CausePath"]) == ("$.error.Error", "$.error.Cause")


def test_no_hard_coded_account_region_or_arn() -> None:
    for path in DEFINITIONS:
        text = path.read_text("utf-8")
        assert not re.search(r"\b\d{12}\b", text), f"{path.name}: an account id"
        assert not re.search(r"arn:aws:(?!states:::)", text), f"{path.name}: a hard-coded ARN"
        assert "us-east-1" not in text, f"{path.name}: a hard-coded region"


def _exception_classes() -> set[str]:
    sources = [*ROOT.glob("functions/*/**/*.py"), *ROOT.glob("layers/*/*/*.py")]
    return {m for p in sources for m in re.findall(r"^class (\w+)\(", p.read_text("utf-8"), re.MULTILINE)}


def test_lambda_error_names_in_retry_and_catch_exist_in_the_code() -> None:
    known = _exception_classes()
    for path in DEFINITIONS:
        for _, machine in machines(load(path)):
            for name, state in machine["States"].items():
                if state.get("Resource") != "arn:aws:states:::lambda:invoke":
                    continue
                for rule in state.get("Retry", []) + state.get("Catch", []):
                    for error in rule["ErrorEquals"]:
                        if "." not in error:  # States.*, Lambda.* are service errors
                            assert error in known, f"{name}: {error} is raised by no function"


# ---- retrain.asl.json: rules the moto execution cannot show ------------------------------------------------
RETRAIN = STATEMACHINES / "retrain.asl.json"
#: Every failure cause that tells a person to delete something says when they may (and of what).
SAFE_DELETE_ADVICE = re.compile(
    r"\bdelete (it|them|the endpoint of this run) by hand only once the stack is in a \*_COMPLETE state "
    r"\(not \*_IN_PROGRESS, not \*_FAILED\) and (it|the endpoint) is neither SageMakerEndpointName nor "
    r"PreviousSageMakerEndpointName\b"
)
UNKNOWN_EFFECT = {"StackUnreadable", "Sandbox.Timedout", "Lambda.Unknown", "States.Timeout"}


def retrain_states() -> dict[str, Any]:
    states: dict[str, Any] = load(RETRAIN)["States"]
    return states


def test_text_classification_reads_the_runs_data_folder_by_s3_prefix() -> None:
    """CreateAutoMLJobV2 accepts only S3Prefix for text classification (ManifestFile: tabular and image
    problem types only). moto accepts anything, so the execution tests cannot see this: it is pinned here,
    with the folder ValidateDataset fills with the copy alone (tests/unit/retraining/test_tasks.py)."""
    jobs = [s for s in retrain_states().values() if s.get("Resource", "").endswith(":sagemaker:createAutoMLJobV2")]
    assert jobs
    for job in jobs:
        assert "TextClassificationJobConfig" in job["Parameters"]["AutoMLProblemTypeConfig"]
        for channel in job["Parameters"]["AutoMLJobInputDataConfig"]:
            assert channel["DataSource"]["S3DataSource"] == {
                "S3DataType": "S3Prefix",
                "S3Uri.$": "$.prepared.result.dataset.training.s3_prefix",  # s3://.../training/runs/<run>/data/
            }


def test_no_failure_cause_advises_deleting_what_may_be_live_or_needed() -> None:
    """Never "delete whichever is not live" (during someone else's canary the stack names their endpoint
    while the previous one still serves 90 %): only with the stack idle and cleanly complete, and never an
    endpoint the stack names as live or previous."""
    causes = [
        (name, value)
        for name, state in retrain_states().items()
        for key, value in state.get("Parameters", {}).items()
        if key.lower() == "cause.$"
    ]
    assert len(causes) > 10
    for name, cause in causes:
        assert len(re.findall(r"\bdelete\b", cause)) == len(SAFE_DELETE_ADVICE.findall(cause)), f"{name}: {cause}"
        assert "whichever" not in cause, name


def test_unclear_release_outcomes_are_recorded_in_the_lineage_before_they_are_notified() -> None:
    """Superseded, unknown, not started: the model may be live, so its lineage is written first."""
    states = retrain_states()
    for start in ("ReleaseSuperseded", "ReleaseOutcomeUnknown", "ReleaseCheckFailed", "ReleaseNotStarted"):
        path, name = [], start
        while name not in ("NotifyFailure", "NotifySuccess"):
            path.append(name)
            state = states[name]
            name = state["Next"] if "Next" in state else state["Default"]
            if state["Type"] == "Choice":  # LineageRecorded: $.error is present on these paths
                (choice,) = state["Choices"]
                assert choice == {"Variable": "$.error", "IsPresent": True, "Next": "NotifyFailure"}, name
                name = choice["Next"]
        assert name == "NotifyFailure", (start, path)
        assert {"ReleaseFailed", "BuildLineage", "RecordLineage"} <= set(path), (start, path)
        assert "CleanUp" not in path


def test_the_release_tasks_retry_what_leaves_their_effect_unknown() -> None:
    """start and status are idempotent: an unreadable stack or a timeout (the call may have gone out) is
    retried; during polling, one that outlasts the retries counts as a poll, and the poll ceiling bounds it."""
    states = retrain_states()
    for name in ("ReleaseModel", "CheckRelease"):
        retried = {error for rule in states[name]["Retry"] for error in rule["ErrorEquals"]}
        assert UNKNOWN_EFFECT <= retried, name
        assert states[name]["TimeoutSeconds"] >= 60, name
    (counted,) = [c for c in states["CheckRelease"]["Catch"] if "StackUnreadable" in c["ErrorEquals"]]
    assert UNKNOWN_EFFECT <= set(counted["ErrorEquals"])
    assert states[counted["Next"]]["Next"] == "CountReleasePoll"
    assert states["CountReleasePoll"]["Next"] == "ReleaseStatus"
