#!/usr/bin/env bash
# The browser test drives Debian's Chromium; install it when missing (root on Debian), else say how.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser test..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "the browser test needs chromium: sudo apt-get install chromium" >&2
  exit 1
fi
