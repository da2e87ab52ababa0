#!/usr/bin/env bash
# Installs the Debian packages exsim needs for one purpose. Idempotent: quiet and fast when all is there.
# Needs root (or sudo) only when something is missing.
# usage: scripts/bootstrap.sh [demo|test]   (default: test)
#   demo  what building and running `exsim` needs (compiler, Boost, OpenSSL, MIT krb5 with its KDC,
#         gss-ntlmssp, SQLite, spdlog, fmt) and curl, which the README's examples use
#   test  demo's, plus what the test suites start or build with: GoogleTest, Google Benchmark,
#         clang (the asan build, fuzzers included), Chromium and node (the browser test), the
#         reverse proxies that `exsim check-proxy` judges (nginx, HAProxy, Squid, Apache httpd),
#         tshark, ab
set -euo pipefail
purpose="${1:-test}"

demo_packages=(
  build-essential cmake ninja-build pkg-config git curl ca-certificates
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libboost-program-options1.81-dev libboost-system1.81-dev
  libssl-dev openssl
  libkrb5-dev krb5-kdc krb5-admin-server krb5-user
  gss-ntlmssp gss-ntlmssp-dev
  libsqlite3-dev
  libspdlog-dev libfmt-dev
)
test_packages=(
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  apache2-utils
  chromium
  nginx-light haproxy squid apache2
  tshark
)

case "$purpose" in
  demo) packages=("${demo_packages[@]}") ;;
  test) packages=("${demo_packages[@]}" "${test_packages[@]}") ;;
  *) echo "bootstrap: unknown purpose '$purpose' (expected demo or test)" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "$purpose" = test ]; then
  # The browser test (tests/browser) needs node and npm. By command, not by package name: a machine
  # may have them from elsewhere (NodeSource's nodejs bundles npm, and conflicts with Debian's npm).
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "bootstrap ($purpose): installing ${#missing[@]} Debian packages: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The krb5, nginx, haproxy, squid and apache2 packages try to start system services: a policy-rc.d
# that refuses keeps them stopped (exsim's tests start their own, as the test user, on loopback).
# Where a policy-rc.d already exists it is left alone.
policy=/usr/sbin/policy-rc.d
added_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  added_policy=1
fi
trap '[ -n "$added_policy" ] && $SUDO rm -f "$policy"' EXIT
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
