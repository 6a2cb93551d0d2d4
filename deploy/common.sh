# shellcheck shell=bash
# Shared by deploy/*.sh (sourced, not executed): the environment's stack name from samconfig.toml and a
# reader for the stack's outputs. Needs: aws CLI, credentials for the target account.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export REPO_ROOT

die() {
  echo "error: $*" >&2
  exit 1
}

# require_env <env>: dev or prod (the [dev.*] / [prod.*] sections of samconfig.toml)
require_env() {
  case "${1:-}" in
    dev | staging | prod) ;;
    *) die "environment must be dev, staging or prod, got '${1:-}'" ;;
  esac
}

# stack_name <env>: stack_name of [<env>.deploy.parameters] in samconfig.toml
stack_name() {
  local name
  name=$(sed -n "/^\[$1\.deploy\.parameters\]/,/^\[/s/^stack_name = \"\(.*\)\"$/\1/p" "$REPO_ROOT/samconfig.toml")
  [[ -n "$name" ]] || die "no stack_name in [$1.deploy.parameters] of samconfig.toml"
  echo "$name"
}

# region <env>: region of [<env>.deploy.parameters] in samconfig.toml (AWS_REGION wins when set)
region() {
  local name
  name=$(sed -n "/^\[$1\.deploy\.parameters\]/,/^\[/s/^region = \"\(.*\)\"$/\1/p" "$REPO_ROOT/samconfig.toml")
  echo "${AWS_REGION:-${name:-us-east-1}}"
}

# output <stack> <OutputKey>: one output value of the deployed stack
output() {
  aws cloudformation describe-stacks --stack-name "$1" \
    --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue" --output text
}

# stack_parameter <stack> <ParameterKey>: the deployed value, empty when the stack or the parameter is absent
stack_parameter() {
  local value
  value=$(aws cloudformation describe-stacks --stack-name "$1" \
    --query "Stacks[0].Parameters[?ParameterKey=='$2'].ParameterValue" --output text 2>/dev/null) || value=
  [[ "$value" == "None" ]] && value=
  echo "$value"
}

# sam_managed_bucket: the SAM CLI's artefact bucket in $AWS_REGION (what `sam deploy --resolve-s3` uses),
# created by SAM's own code when it does not exist yet (stack aws-sam-cli-managed-default)
sam_managed_bucket() {
  local bucket
  bucket=$(aws cloudformation describe-stacks --stack-name aws-sam-cli-managed-default \
    --query "Stacks[0].Outputs[?OutputKey=='SourceBucket'].OutputValue" --output text 2>/dev/null) || bucket=
  if [[ -z "$bucket" || "$bucket" == "None" ]]; then
    [[ -x "$REPO_ROOT/.venv-sam/bin/python" ]] || die "no SAM managed bucket yet: run scripts/bootstrap.sh sam first"
    bucket=$("$REPO_ROOT/.venv-sam/bin/python" -c \
      'import sys; from samcli.lib.bootstrap.bootstrap import manage_stack; print(manage_stack(None, sys.argv[1]))' \
      "$AWS_REGION")
  fi
  echo "$bucket"
}

# use_env <env>: sets $stack and exports AWS_REGION for the environment
use_env() {
  stack=$(stack_name "$1")
  AWS_REGION=$(region "$1")
  export AWS_REGION
}

# release_context: sets $function_name, $application and $group (the predict function and its CodeDeploy
# deployment group) from the outputs of the deployed $stack
# shellcheck disable=SC2034  # the variables are read by the scripts that source this file
release_context() {
  function_name=$(output "$stack" PredictFunctionName)
  application=$(output "$stack" CodeDeployApplicationName)
  group=$(output "$stack" PredictDeploymentGroupName)
}
