#!/usr/bin/env bash
# The former name of the installer, kept so existing instructions still work: see
# tools/install.sh (releases in /opt/vigbox, upgrade in place, --rollback).
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/install.sh" "$@"
