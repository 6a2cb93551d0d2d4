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
