#!/usr/bin/env bash
# System packages the tests use from Debian: Chromium (browser test of the web page), gst-rtsp-server with
# its Python bindings (a real RTSP server on loopback) and mosquitto (a real MQTT broker on loopback).
# Installs what is missing when root on Debian, else says how.
set -euo pipefail
packages=(chromium gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good
          gstreamer1.0-plugins-ugly mosquitto)
missing=()
for p in "${packages[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" == "install ok installed" ]] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing for the tests: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "the tests need: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
