#!/usr/bin/env bash
# Roll the predict function back by hand.
#
#   deploy/rollback.sh <dev|prod>                     stop the release in progress; CodeDeploy moves `live`
#                                                     back to the version it replaced
#   deploy/rollback.sh <dev|prod> --to-version <N>    no release in progress: point `live` at version N
#                                                     (all traffic, no canary); lists the versions without N
#
# The second form changes the alias outside CloudFormation and CodeDeploy: follow it with a fixing release
# (revert, then deploy/deploy.sh). deploy/README.md explains both.
set -euo pipefail
# shellcheck source=deploy/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

env=${1:-}
require_env "$env"
shift
target=""
if [[ "${1:-}" == "--to-version" ]]; then
  target=${2:-}
  [[ "$target" =~ ^[0-9]+$ ]] || die "--to-version needs a published version number"
fi
use_env "$env"

release_context

active=$(aws deploy list-deployments --application-name "$application" --deployment-group-name "$group" \
  --include-only-statuses Created Queued InProgress Ready --query 'deployments' --output text)

if [[ -n "$active" && "$active" != "None" ]]; then
  for id in $active; do
    echo "stopping deployment $id with automatic rollback"
    aws deploy stop-deployment --deployment-id "$id" --auto-rollback-enabled
  done
  echo "CloudFormation will report the stack update as failed and roll the stack back too."
  exit 0
fi

current=$(aws lambda get-alias --function-name "$function_name" --name live --query FunctionVersion --output text)
if [[ -z "$target" ]]; then
  echo "No release in progress; live -> version $current. Published versions (newest last):"
  # shellcheck disable=SC2016 # a JMESPath literal, not a shell expansion
  aws lambda list-versions-by-function --function-name "$function_name" \
    --query 'Versions[?Version!=`$LATEST`].[Version, LastModified, Environment.Variables.SAGEMAKER_ENDPOINT_NAME]' \
    --output text
  echo "Re-run with --to-version <N> to point live at version N."
  exit 1
fi

aws lambda get-function --function-name "$function_name" --qualifier "$target" >/dev/null ||
  die "version $target of $function_name does not exist"
echo "pointing live of $function_name from version $current to $target (all traffic)"
aws lambda update-alias --function-name "$function_name" --name live --function-version "$target" \
  --routing-config 'AdditionalVersionWeights={}'
echo "done. Now release a fix (or a revert) with deploy/deploy.sh $env."
