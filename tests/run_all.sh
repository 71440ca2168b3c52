#!/usr/bin/env bash
# tests/run_all.sh: installs what the suite needs (Debian 12), builds Warren twice (optimised,
# and with AddressSanitizer + UndefinedBehaviorSanitizer), runs every test under ctest in both
# builds, then runs the libFuzzer targets for a bounded number of iterations.
# Usage: bash tests/run_all.sh            (from the repository root or anywhere)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PACKAGES=(build-essential cmake pkg-config python3 python3-pika amqp-specs uthash-dev
          libcmocka-dev librabbitmq-dev amqp-tools clang libclang-rt-14-dev golang-go golang-github-rabbitmq-amqp091-go-dev
          dpkg-dev lintian systemd man-db groff-base libmicrohttpd-dev libjansson-dev libgnutls28-dev libjs-chart.js
          libraft-dev libuv1-dev
          rabbitmq-server nagios-plugins-rabbitmq prometheus curl sslscan python3-celery
          chromium chromium-driver python3-selenium)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

# amqplib (integration_amqplib): Node from Debian when the machine has none, then the locked
# client from the npm registry into tests/node/node_modules.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q nodejs npm
fi
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)

JOBS="$(nproc)"
passed=0; failed=0
run_ctest() { # $1 build dir, $2 label, then extra ctest arguments
  local dir="$1" label="$2"; shift 2
  local log; log="$(mktemp)"
  echo "=== ctest: $label ($dir) ==="
  if ctest --test-dir "$dir" --output-on-failure -j "$JOBS" --timeout 900 "$@" 2>&1 | tee "$log"; then :; fi
  local line; line="$(grep -E '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1 || true)"
  if [ -z "$line" ]; then echo "ctest in $dir ($label) printed no summary"; failed=$((failed + 1)); rm -f "$log"; return; fi
  local f t; f="$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")"
  t="$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")"
  passed=$((passed + t - f)); failed=$((failed + f)); rm -f "$log"
}

# Options stated explicitly: the README's build-and-start command may have configured build/ without tests.
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWARREN_TESTS=ON -DWARREN_SANITIZE=OFF >/dev/null
cmake --build build -j "$JOBS"
run_ctest build release

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DWARREN_TESTS=ON -DWARREN_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$JOBS"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_ctest build-asan sanitizers

CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DWARREN_FUZZ=ON >/dev/null
fuzz_targets="fuzz_frame fuzz_table fuzz_definitions fuzz_connection fuzz_mgmt"
# The quorum queue snapshot's target exists when the cluster layer is built (libraft).
if grep -q "fuzz_qq_snapshot" <(cmake --build build-fuzz --target help 2>/dev/null); then
  fuzz_targets="$fuzz_targets fuzz_qq_snapshot"
fi
# shellcheck disable=SC2086 # one word per target
cmake --build build-fuzz -j "$JOBS" --target $fuzz_targets
run_ctest build-fuzz fuzzers -R "protocol_fuzz|model_fuzz|admin_fuzz|cluster_fuzz"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
