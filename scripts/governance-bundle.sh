#!/usr/bin/env bash
# The governance processing jobs' code, as uploaded to s3://<DataBucket>/code/: the governance package and,
# beside it, sentiment_core (the labels, report schema id, bias rule and endpoint wire format it shares with
# the functions; standard library only). Usage: scripts/governance-bundle.sh <out dir>
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: scripts/governance-bundle.sh <out dir>}"
rm -rf "$out" && mkdir -p "$out"
cp -R governance layers/core/sentiment_core "$out/"
find "$out" -name __pycache__ -type d -prune -exec rm -rf {} +
