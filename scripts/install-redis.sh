#!/usr/bin/env bash
# Installs redis-server from Debian's packages (the integration tests start their own server from it).
set -euo pipefail
if command -v redis-server >/dev/null; then exit 0; fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  command -v sudo >/dev/null || { echo "redis-server is missing and this user cannot install it: run 'apt-get install redis-server' as root" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q redis-server >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q redis-server >/dev/null; }
redis-server --version
