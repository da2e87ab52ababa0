#!/usr/bin/env bash
# Installs every Debian package exsim needs. Idempotent: quiet and fast when all is there.
# Needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git curl ca-certificates
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libboost-program-options1.81-dev libboost-system1.81-dev
  libssl-dev openssl
  libkrb5-dev krb5-kdc krb5-admin-server krb5-user
  gss-ntlmssp gss-ntlmssp-dev
  libsqlite3-dev
  libspdlog-dev libfmt-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  apache2-utils
  chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The browser test (tests/browser) needs node and npm. By command, not by package name: a machine
# may have them from elsewhere (NodeSource's nodejs bundles npm, and conflicts with Debian's npm).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "bootstrap: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The krb5 packages try to start system services; that is refused in containers and harmless.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
