#!/usr/bin/env bash
# Where a release of the predict function stands: alias weights, recent CodeDeploy deployments, rollback
# alarms, the PostTraffic verdict.
#
#   deploy/status.sh <dev|prod>
set -euo pipefail
# shellcheck source=deploy/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

env=${1:-}
require_env "$env"
use_env "$env"

release_context

echo "== alias live (FunctionVersion gets 1 - weight; AdditionalVersionWeights is the canary)"
aws lambda get-alias --function-name "$function_name" --name live \
  --query '{version: FunctionVersion, canary: RoutingConfig.AdditionalVersionWeights}' --output json

echo "== last deployments"
for id in $(aws deploy list-deployments --application-name "$application" --deployment-group-name "$group" \
  --query 'deployments[:5]' --output text); do
  aws deploy get-deployment --deployment-id "$id" \
    --query 'deploymentInfo.[deploymentId, status, createTime, errorInformation.message]' --output text
done

echo "== rollback alarms"
aws cloudwatch describe-alarms \
  --alarm-names "$(output "$stack" CanaryLatencyAlarmName)" "$(output "$stack" CanaryErrorRateAlarmName)" \
    "$(output "$stack" CanaryFastErrorRateAlarmName)" "$(output "$stack" CanaryClientErrorAlarmName)" \
    "$(output "$stack" CanaryUnhandledErrorsAlarmName)" \
  --query 'MetricAlarms[].[AlarmName, StateValue, StateReason]' --output text

echo "== canary verdicts (PostTraffic hook, last hour)"
aws logs filter-log-events --log-group-name "$(output "$stack" PostTrafficHookLogGroupName)" \
  --start-time "$((($(date +%s) - 3600) * 1000))" --filter-pattern '{ $.message = "canary verdict" }' \
  --query 'events[].message' --output text

echo "dashboard: $(output "$stack" DashboardUrl)"
