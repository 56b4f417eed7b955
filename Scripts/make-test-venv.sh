#!/usr/bin/env bash
# Makes .venv-ci, the Python that the interop tests run (TensorBoard reads our event files, ...), with
# Scripts/test-requirements.txt installed. Idempotent: does nothing when the venv already holds these requirements.
# The tests call this on first use, under a lock, so `swift test` works on a fresh clone (PyPI must be reachable).
set -euo pipefail
cd "$(dirname "$0")/.."
# One at a time: tests that run in parallel may all call this on a fresh clone.
exec 9>.venv-ci.lock
flock 9
requirements=Scripts/test-requirements.txt
stamp=.venv-ci/requirements.txt
if [ -x .venv-ci/bin/python ] && cmp -s "$requirements" "$stamp"; then exit 0; fi
echo "making .venv-ci with $(grep -v '^#' "$requirements" | xargs)" >&2
if ! python3 -m venv .venv-ci >/dev/null 2>&1; then
    # Debian's python3 needs its venv package; install it when we can (as root).
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv .venv-ci
fi
.venv-ci/bin/pip install -q --disable-pip-version-check -r "$requirements" >&2
cp "$requirements" "$stamp"
