#!/usr/bin/env bash
# The whole test suite: installs what it needs (system packages when root, the venv,
# the package with its test extras), then runs the linters (ruff, mypy: a finding
# fails the run) and pytest. Extra arguments go to pytest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$(bash "$here/tools/bootstrap.sh" test | tail -n 1)"
bin="$(dirname "$python")"
cd "$here"
echo "ruff:" >&2
"$bin/ruff" check appliance tests bench </dev/null
echo "mypy:" >&2
"$python" -m mypy </dev/null
status=0
"$python" -m pytest "$@" </dev/null || status=$?
if [ "$status" = 5 ]; then
  echo "tools/test.sh: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
