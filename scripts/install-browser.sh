#!/usr/bin/env bash
# Headless Chromium for the end-to-end browser tests: Debian's build (a test tool's own browser download cannot
# work offline). Skipped when a chromium is already on the PATH.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium chromium-driver fonts-dejavu-core >/dev/null
