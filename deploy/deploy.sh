#!/usr/bin/env bash
# Validate, build and deploy one environment with its samconfig.toml settings, then show where to watch.
#
#   deploy/deploy.sh <dev|staging|prod> [--parameter-overrides Key=Value ...] [other `sam deploy` arguments]
#
# Parameters: samconfig.toml's list for the environment, then the --parameter-overrides given here (merged by
# deploy/parameters.py; `sam deploy` alone would replace the whole list). Parameters in neither keep their
# deployed values, so an endpoint a model release set survives a later deploy.
#
# The bootstrap model: while the stack serves no endpoint of its own (SageMakerEndpointName empty: a new stack)
# or still has its bootstrap endpoint, the shipped model's bundle is built (tools/model_bundle.py, the
# container's onnxruntime and tokenizers vendored), uploaded to the SAM CLI's managed bucket under its sha256
# and passed as BootstrapModelDataUrl. BOOTSTRAP_MODEL=off removes the bootstrap endpoint (only once a release
# set SageMakerEndpointName; the template's rule refuses it otherwise).
#
# `sam deploy` returns when CloudFormation is done, and CloudFormation waits for the CodeDeploy canary of
# the predict function (PreTraffic hook, 10 % for CanaryIntervalMinutes, PostTraffic hook: about 10 minutes in
# dev, 15 in prod). A failed canary rolls the stack update back and this script exits non-zero.
# deploy/README.md: how a release goes.
set -euo pipefail
# shellcheck source=deploy/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

env=${1:-}
require_env "$env"
shift
use_env "$env"

overrides=()
extra=()
while (($#)); do
  case "$1" in
    --parameter-overrides)
      shift
      while (($#)) && [[ "$1" != --* ]]; do
        overrides+=("$1")
        shift
      done
      ;;
    *)
      extra+=("$1")
      shift
      ;;
  esac
done

# CodeDeploy may invoke only hooks named CodeDeployHook_*; the longest, CodeDeployHook_<stack>-post, must
# fit Lambda's 64-character function-name limit.
hook="CodeDeployHook_${stack}-post"
((${#hook} <= 64)) || die "stack name '$stack' is too long: hook name '$hook' exceeds 64 characters"

cd "$REPO_ROOT"
SAM=${SAM:-sam}
if ! command -v "$SAM" >/dev/null && [[ -x .venv-sam/bin/sam ]]; then
  SAM=.venv-sam/bin/sam
fi
# `sam build` needs a real python3.12 on PATH (the layer is built with it).
if python312=$(scripts/find-python.sh 3.12 2>/dev/null); then
  PATH="$(dirname "$python312"):$PATH"
fi

PYTHON=${PYTHON:-python3}
echo "==> $stack ($AWS_REGION): validate"
"$SAM" validate --lint --config-env "$env"
echo "==> build"
"$SAM" build --config-env "$env"
# CloudFormation runs an update as the role given, or else as the role of the stack's previous update. A
# retraining release runs as ModelReleaseRole, which may change only what a model release changes, so after
# one a deploy without a role of its own would run as that role and roll back. DEPLOY_ROLE_ARN: the
# deployment role (deploy/README.md, "Releases from the retraining state machine").
role_args=(--no-fail-on-empty-changeset)  # never empty: "${role_args[@]}" under set -u on bash < 4.4
if [[ -n "${DEPLOY_ROLE_ARN:-}" ]]; then
  role_args+=(--role-arn "$DEPLOY_ROLE_ARN")
elif stack_role=$(aws cloudformation describe-stacks --stack-name "$stack" --query 'Stacks[0].RoleARN' \
  --output text 2>/dev/null) && [[ -n "$stack_role" && "$stack_role" != "None" ]]; then
  if [[ "$stack_role" == "$(output "$stack" ModelReleaseRoleArn)" ]]; then
    die "the last update of $stack ran as the model release role ($stack_role), which CloudFormation would reuse;" \
      "set DEPLOY_ROLE_ARN to the stack's deployment role"
  fi
fi
# The functions may invoke only endpoints tagged sentiment-api:stack=<stack> (docs/security.md). The policy is
# the role's, shared by every version: if the endpoint the stable version calls lacked the tag, the update of
# the role would cut it off before any canary. Every endpoint the retraining creates is tagged; one given by
# hand must be tagged first. (A new endpoint given on the command line is checked by the PreTraffic hook.)
if live_endpoints=$(aws cloudformation describe-stacks --stack-name "$stack" --query \
  "Stacks[0].Parameters[?ParameterKey=='SageMakerEndpointName' || ParameterKey=='PreviousSageMakerEndpointName'].ParameterValue" \
  --output text 2>/dev/null); then
  account=$(aws sts get-caller-identity --query Account --output text)
  for endpoint in $live_endpoints; do
    arn="arn:aws:sagemaker:$AWS_REGION:$account:endpoint/$endpoint"
    if ! tag=$(aws sagemaker list-tags --resource-arn "$arn" --query "Tags[?Key=='sentiment-api:stack'].Value" \
      --output text 2>/dev/null); then
      # an endpoint that no longer exists cannot be cut off (a deleted rollback target): say so, go on
      if missing=$(aws sagemaker describe-endpoint --endpoint-name "$endpoint" 2>&1 >/dev/null) ||
        [[ "$missing" != *"Could not find endpoint"* ]]; then
        die "cannot read the tags of endpoint $endpoint: ${missing:-list-tags failed}"
      fi
      echo "warning: endpoint $endpoint, named by $stack's parameters, no longer exists (a rollback to it would fail)" >&2
      continue
    fi
    [[ "$tag" == "$stack" ]] || die "endpoint $endpoint (in use by $stack) lacks the tag sentiment-api:stack=$stack;" \
      "add it first: aws sagemaker add-tags --resource-arn $arn --tags Key=sentiment-api:stack,Value=$stack"
  done
fi
# The bootstrap model (see the header): needed while no endpoint of the stack's own serves, kept while it exists.
# given_value <Key>: the value given for Key in --parameter-overrides ("" for Key="" or Key=), exit 1 if none
given_value() {
  local pair found=1 value=
  for pair in "${overrides[@]+"${overrides[@]}"}"; do
    if [[ "$pair" == "$1="* ]]; then
      value=${pair#"$1="}
      value=${value//\"/}
      found=0
    fi
  done
  echo "$value"
  return "$found"
}
# An endpoint given (an empty one included: back to the bootstrap endpoint), else the deployed one.
endpoint=$(given_value SageMakerEndpointName) || endpoint=$(stack_parameter "$stack" SageMakerEndpointName)
previous=$(given_value PreviousSageMakerEndpointName) || previous=$(stack_parameter "$stack" PreviousSageMakerEndpointName)
deployed_bundle=$(stack_parameter "$stack" BootstrapModelDataUrl)
if [[ "${BOOTSTRAP_MODEL:-auto}" == off ]]; then
  [[ -n "$endpoint" ]] || die "BOOTSTRAP_MODEL=off needs an endpoint of the stack's own (SageMakerEndpointName): the bootstrap one serves"
  # the bootstrap endpoint as the rollback target: removing it would leave the previous versions nothing to call
  [[ "$previous" != sentiment-*-bootstrap-* ]] || die "the bootstrap endpoint $previous is $stack's rollback target" \
    "(PreviousSageMakerEndpointName); give --parameter-overrides PreviousSageMakerEndpointName=\"\" to remove it anyway"
  overrides+=('BootstrapModelDataUrl=""')
elif [[ -z "$endpoint" || -n "$deployed_bundle" ]]; then
  echo "==> bootstrap model bundle"
  bundle=.aws-sam/bootstrap-model/model.tar.gz
  digest=$("$PYTHON" -m tools.model_bundle --vendor --out "$bundle" | tail -n 1)
  [[ "$digest" =~ ^[0-9a-f]{64}$ ]] || die "tools.model_bundle printed no sha256: $digest"
  bucket=$(sam_managed_bucket)
  key="$stack/bootstrap-model/$digest.tar.gz"
  aws s3 cp "$bundle" "s3://$bucket/$key" --only-show-errors
  overrides+=("BootstrapModelDataUrl=s3://$bucket/$key")
fi
mapfile -t parameters < <("$PYTHON" "$REPO_ROOT/deploy/parameters.py" "$env" "${overrides[@]+"${overrides[@]}"}")

echo "==> deploy (watch the canary with: deploy/status.sh $env)"
"$SAM" deploy --config-env "$env" --parameter-overrides "${parameters[@]}" "${role_args[@]}" \
  "${extra[@]+"${extra[@]}"}"

# The governance processing jobs run the code under s3://<DataBucket>/code/ (governance/ and the
# sentiment_core it imports): publish the bundle of this checkout with every deploy, so code and state machine
# never drift apart.
echo "==> governance code"
data_bucket=$(aws cloudformation describe-stack-resource --stack-name "$stack" --logical-resource-id DataBucket \
  --query StackResourceDetail.PhysicalResourceId --output text)
scripts/governance-bundle.sh .aws-sam/governance-code
aws s3 sync .aws-sam/governance-code/ "s3://$data_bucket/code/" --only-show-errors

echo "==> deployed"
echo "dashboard: $(output "$stack" DashboardUrl)"
echo "alias live: version $(aws lambda get-alias --function-name "$(output "$stack" PredictFunctionName)" \
  --name live --query FunctionVersion --output text)"
