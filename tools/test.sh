#!/usr/bin/env bash
# The whole test suite: installs what it needs (system packages when root, the venv,
# the package with its test extras), then runs pytest. Extra arguments go to pytest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$(bash "$here/tools/bootstrap.sh" test | tail -n 1)"
cd "$here"
status=0
"$python" -m pytest "$@" </dev/null || status=$?
if [ "$status" = 5 ]; then
  echo "tools/test.sh: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
