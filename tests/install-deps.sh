#!/usr/bin/env bash
# Installs kvtier's build and test dependencies from Debian 12 packages, only those
# missing. Used by examples/demo.sh and tests/run.sh.
set -euo pipefail

pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libmicrohttpd-dev libcjson-dev libhiredis-dev liburing-dev libcmocka-dev libyaml-dev
      libxxhash-dev redis-server curl fio)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
