#!/usr/bin/env bash
# Print a bearer token of the stack's machine client (client credentials grant against its Cognito user pool).
#
#   deploy/token.sh <dev|staging|prod>
#   curl -H "Authorization: Bearer $(deploy/token.sh dev)" ...
#
# Only for a stack that created its own user pool (JwtIssuerUrl left empty): the outputs TokenUrl and
# MachineClientId name the token endpoint and the client. The client secret is read from Cognito at run time
# (DescribeUserPoolClient; the caller needs cognito-idp:DescribeUserPoolClient on the pool) and handed to
# curl on its standard input, so it is never written to disk, never in a process's arguments and never
# printed (with the AWS CLI's cli_history off, its default: that setting would store the answer of
# DescribeUserPoolClient on disk). Cognito bills each token request of a machine client (deploy/README.md):
# reuse a token for its hour rather than asking for one per request.
set -euo pipefail
set +x  # never trace: the secret passes through a variable
# shellcheck source=deploy/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

env=${1:-}
require_env "$env"
use_env "$env"

token_url=$(output "$stack" TokenUrl)
client_id=$(output "$stack" MachineClientId)
pool_id=$(output "$stack" UserPoolId)
[[ -n "$token_url" && "$token_url" != "None" && -n "$client_id" && "$client_id" != "None" ]] ||
  die "$stack has no TokenUrl/MachineClientId outputs: it uses an external issuer (JwtIssuerUrl); ask that identity provider for a token"

secret=$(aws cognito-idp describe-user-pool-client --user-pool-id "$pool_id" --client-id "$client_id" \
  --query UserPoolClient.ClientSecret --output text)
[[ -n "$secret" && "$secret" != "None" ]] || die "the machine client $client_id has no secret"

# curl reads its credentials from a config given on stdin (-K -): neither argv nor a file holds the secret.
# -q first: no ~/.curlrc (a `verbose` or `trace` line there would write the Authorization header out).
[[ "$client_id$secret" != *[\"\\]* ]] || die "the client id or secret holds a quote or backslash: refusing to quote it"
response=$(
  printf 'user = "%s:%s"\n' "$client_id" "$secret" | curl -q --silent --show-error --fail-with-body \
    --max-time 10 -K - --data grant_type=client_credentials --data-urlencode "scope=sentiment-api/predict" \
    -H "Content-Type: application/x-www-form-urlencoded" "$token_url"
) || die "the token endpoint refused: $response"
unset secret
token=$(printf '%s' "$response" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])') ||
  die "the token endpoint answered without an access_token"
printf '%s\n' "$token"
