#!/usr/bin/env bash
# Installs Chromium from Debian's packages: the play page's browser test drives it headless with Playwright
# (Playwright's own browser downloads are never used). Without it that test skips, saying why.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  command -v sudo >/dev/null || { echo "chromium is missing and this user cannot install it: run 'apt-get install chromium' as root" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null; }
/usr/bin/chromium --version
