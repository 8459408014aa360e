#!/usr/bin/env bash
# Runs the MCP round trip with the official Python MCP client (PyPI `mcp`).
#
#   tests/mcp/run.sh [--transcript FILE]
#
# Creates target/mcp-venv and installs the pinned client there when missing,
# builds the `sandbay` binary, runs
# tests/mcp/client_test.py against the state and fs backends (and docker when
# a daemon answers), printing `mcp: N passed, N failed`, then
# tests/mcp/http_client_test.py against `sandbay serve` (MCP over streamable
# HTTP, two users), printing `mcp-http: N passed, N failed`. Exits non-zero on
# any failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv="$root/target/mcp-venv"
client_version="2.3.0"
validator_version="0.7.1"
target_dir=${CARGO_TARGET_DIR:-$root/target}

if ! "$venv/bin/python" -c "import mcp, sys; sys.exit(0 if __import__('importlib.metadata').metadata.version('mcp') == '$client_version' else 1)" 2>/dev/null; then
    echo "mcp: installing the Python MCP client $client_version into target/mcp-venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "mcp==$client_version"
fi
if ! "$venv/bin/python" -c "import sys; sys.exit(0 if __import__('importlib.metadata').metadata.version('openapi-spec-validator') == '$validator_version' else 1)" 2>/dev/null; then
    echo "mcp: installing openapi-spec-validator $validator_version into target/mcp-venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "openapi-spec-validator==$validator_version"
fi

cd "$root"
cargo build --quiet -p sandbay-cli
server=("$target_dir/debug/sandbay" mcp)

# The docker backend joins when a daemon answers (always under CI=true,
# where a missing daemon is then a failure, not a skip).
docker=()
if [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]] || docker info >/dev/null 2>&1; then
    docker=(--docker)
else
    echo "skipped: no Docker daemon answers: the MCP round trip on the docker backend"
fi

status=0
"$venv/bin/python" "$root/tests/mcp/client_test.py" "${docker[@]}" "$@" -- "${server[@]}" || status=$?
"$venv/bin/python" "$root/tests/mcp/http_client_test.py" "$target_dir/debug/sandbay" || status=$?
exit "$status"
