#!/usr/bin/env bash
# The main job on the embedded defaults, on any Debian / Raspberry Pi OS machine:
# installs what it needs, then runs the whole box simulated (`vigbox demo`: capture,
# encoder, tablet UI and sync to a demo office) until Ctrl-C. Arguments go to `vigbox demo`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$(bash "$here/tools/bootstrap.sh" run | tail -n 1)"
exec "$python" -m appliance --data-dir "${VIGBOX_DATA_DIR:-$here/vigbox-data}" demo "$@"
