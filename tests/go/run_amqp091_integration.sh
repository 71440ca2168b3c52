#!/usr/bin/env bash
# tests/go/run_amqp091_integration.sh: runs the integration tests of Go's AMQP 0-9-1 client
# (github.com/rabbitmq/amqp091-go, as packaged by Debian) against Warren, offline.
#
# Needs (Debian 12; this script installs nothing):
#   apt-get install golang-go golang-github-rabbitmq-amqp091-go-dev
# The -dev package ships the client's source and tests under /usr/share/gocode/src and pulls in
# the only dependency the tests import (golang-uber-goleak-dev). The tests are built in GOPATH
# mode (GO111MODULE=off, GOPROXY=off) from a temporary copy, so nothing is fetched.
#
# Broker under test:
#   WARREN_TEST_URL  amqp://user:pass@host:port/vhost of a running broker (e.g. RabbitMQ);
#                    when set, no broker is started.
#   WARREN_BIN       otherwise: the warren binary (default <repo>/build/warren), started on a free
#                    loopback port with a temporary --data-dir, stopped with SIGTERM afterwards;
#                    its exit status must be 0 (and, with WARREN_SANITIZE=1, its output must hold
#                    no sanitizer report).
# Other knobs:
#   AMQP091_SRC          client source (default /usr/share/gocode/src/github.com/rabbitmq/amqp091-go)
#   WARREN_GO_RUN        extended regexp: run only the (non-excluded) tests whose names match it
#   WARREN_GO_TIMEOUT    go test -timeout (default 600s)
#   WARREN_LOG_LEVEL     passed to warren --log-level
#   WARREN_START_TIMEOUT seconds to wait for warren's port (default 10)
# Tests listed in tests/go/amqp091_excluded.txt are not run (see docs/compatibility.md).
# Go 1.19 (Debian 12) has no `go test -skip`, so the script lists the package's tests and passes
# `-run '^(A|B|...)$'` with the excluded names left out.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
SRC="${AMQP091_SRC:-/usr/share/gocode/src/github.com/rabbitmq/amqp091-go}"
EXCLUDED_FILE="$HERE/amqp091_excluded.txt"
GO="${GO_EXECUTABLE:-go}"
GO_TIMEOUT="${WARREN_GO_TIMEOUT:-600s}"
PKG="github.com/rabbitmq/amqp091-go"

die() { echo "run_amqp091_integration: $*" >&2; exit 2; }

command -v "$GO" >/dev/null 2>&1 || die "go not found (apt-get install golang-go)"
[ -f "$SRC/integration_test.go" ] ||
  die "no amqp091-go source at $SRC (apt-get install golang-github-rabbitmq-amqp091-go-dev)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/warren-go-XXXXXX")"
BROKER_PID=""
cleanup() {
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -KILL "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the client's source in a private GOPATH; its dependencies come from Debian's GOPATH -------
mkdir -p "$WORK/gopath/src/github.com/rabbitmq"
cp -r "$SRC" "$WORK/gopath/src/$PKG"
chmod -R u+w "$WORK/gopath"
export GOPATH="$WORK/gopath:/usr/share/gocode"
export GO111MODULE=off GOPROXY=off GOFLAGS="" GOTOOLCHAIN=local
if [ -z "${GOCACHE:-}" ]; then
  cache="$("$GO" env GOCACHE 2>/dev/null || true)"
  if [ -z "$cache" ] || [ "$cache" = off ] || ! mkdir -p "$cache" 2>/dev/null; then
    export GOCACHE="$WORK/gocache"
  fi
fi
cd "$WORK/gopath/src/$PKG" || die "cannot enter the copied source"

# --- which tests to run ------------------------------------------------------------------------
if ! "$GO" test -tags integration -list '.*' . >"$WORK/list.txt" 2>&1; then
  cat "$WORK/list.txt"
  die "the amqp091-go tests do not build"
fi
grep -E '^(Test|Example)[A-Za-z0-9_]*$' "$WORK/list.txt" | sort -u >"$WORK/all.txt"
sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$EXCLUDED_FILE" 2>/dev/null | sort -u >"$WORK/excluded.txt"
for name in $(comm -13 "$WORK/all.txt" "$WORK/excluded.txt"); do
  echo "warning: excluded test $name does not exist in this amqp091-go version" >&2
done
comm -23 "$WORK/all.txt" "$WORK/excluded.txt" >"$WORK/run.txt"
if [ -n "${WARREN_GO_RUN:-}" ]; then
  grep -E -- "$WARREN_GO_RUN" "$WORK/run.txt" >"$WORK/run.filtered" || true
  mv "$WORK/run.filtered" "$WORK/run.txt"
fi
total=$(wc -l <"$WORK/all.txt"); selected=$(wc -l <"$WORK/run.txt")
excluded=$(comm -12 "$WORK/all.txt" "$WORK/excluded.txt" | wc -l)
echo "amqp091-go $(dpkg-query -W -f='${Version}' golang-github-rabbitmq-amqp091-go-dev 2>/dev/null || echo '(version unknown)'), $("$GO" version)"
echo "tests and examples: $total, excluded: $excluded, selected: $selected"
[ "$selected" -gt 0 ] || die "no test selected"
RUN_REGEXP="^($(paste -sd'|' "$WORK/run.txt"))\$"

# --- the broker --------------------------------------------------------------------------------
free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  return 1
}

if [ -n "${WARREN_TEST_URL:-}" ]; then
  AMQP_URL="$WARREN_TEST_URL"
  echo "broker: external, $AMQP_URL"
else
  BIN="${WARREN_BIN:-$REPO_ROOT/build/warren}"
  [ -x "$BIN" ] || die "warren binary not found: $BIN (set WARREN_BIN or WARREN_TEST_URL)"
  mkdir -p "$WORK/data"
  # Up to 3 attempts: the broker can lose the race for the port free_port picked.
  for attempt in 1 2 3; do
    PORT="$(free_port)" || die "no free port found"
    args=(--bind 127.0.0.1 --port "$PORT" --data-dir "$WORK/data")
    [ -n "${WARREN_LOG_LEVEL:-}" ] && args+=(--log-level "$WARREN_LOG_LEVEL")
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" \
    UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
      "$BIN" "${args[@]}" </dev/null >"$WORK/broker.log" 2>&1 &
    BROKER_PID=$!
    deadline=$((SECONDS + ${WARREN_START_TIMEOUT:-10}))
    until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
      if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        wait "$BROKER_PID"; start_status=$?; BROKER_PID=""
        echo "warren (attempt $attempt, port $PORT) exited with status $start_status before accepting connections:"
        cat "$WORK/broker.log"
        [ "$attempt" -lt 3 ] || die "warren did not start"
        continue 2
      fi
      [ "$SECONDS" -lt "$deadline" ] || { cat "$WORK/broker.log"; die "warren did not accept on port $PORT"; }
      sleep 0.1
    done
    break
  done
  AMQP_URL="amqp://guest:guest@127.0.0.1:$PORT/"
  echo "broker: $BIN (pid $BROKER_PID) on $AMQP_URL"
fi
export AMQP_URL

# --- the tests ---------------------------------------------------------------------------------
# The outer timeout is a backstop in case the test binary ignores its own -timeout.
timeout --signal=KILL 780 "$GO" test -tags integration -count=1 -v -timeout "$GO_TIMEOUT" \
  -run "$RUN_REGEXP" . 2>&1 | tee "$WORK/go-test.log"
go_status=${PIPESTATUS[0]}

passed=$(grep -cE '^[[:space:]]*--- PASS: (Test|Example)[A-Za-z0-9_]* ' "$WORK/go-test.log")
failed=$(grep -cE '^[[:space:]]*--- FAIL: (Test|Example)[A-Za-z0-9_]* ' "$WORK/go-test.log")
skipped=$(grep -cE '^[[:space:]]*--- SKIP: (Test|Example)[A-Za-z0-9_]* ' "$WORK/go-test.log")
status=$go_status
# Tests whose outcome depends on thread scheduling in the client (see amqp091_racy.txt) get one
# more run when they are the only failures; the output says so.
RACY_FILE="$HERE/amqp091_racy.txt"
if [ "$go_status" -ne 0 ] && [ "$failed" -gt 0 ] && [ -f "$RACY_FILE" ]; then
  grep -oE '^[[:space:]]*--- FAIL: (Test|Example)[A-Za-z0-9_]*' "$WORK/go-test.log" |
    sed -E 's/.*--- FAIL: //' | sort -u >"$WORK/failed.txt"
  sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$RACY_FILE" | sort -u >"$WORK/racy.txt"
  if [ -z "$(comm -23 "$WORK/failed.txt" "$WORK/racy.txt")" ]; then
    echo "only racy tests failed ($(paste -sd' ' "$WORK/failed.txt")); running them once more"
    if timeout --signal=KILL 300 "$GO" test -tags integration -count=1 -v -timeout 240s \
         -run "^($(paste -sd'|' "$WORK/failed.txt"))\$" . 2>&1 | tee "$WORK/go-retry.log"; then
      echo "racy tests passed on their second run: $(paste -sd' ' "$WORK/failed.txt")"
      passed=$((passed + failed)); failed=0; status=0
    fi
  fi
fi
if [ "$go_status" -ne 0 ] && [ "$failed" -eq 0 ] && [ "$status" -ne 0 ]; then
  echo "go test exited with status $go_status with no failed test (build error, timeout, panic or goroutine leak: see above)"
fi

# --- stop the broker and check it shut down cleanly ----------------------------------------------
if [ -n "$BROKER_PID" ]; then
  if ! kill -0 "$BROKER_PID" 2>/dev/null; then
    wait "$BROKER_PID"; broker_status=$?
    echo "warren died during the tests (status $broker_status)"; status=1
  else
    kill -TERM "$BROKER_PID"
    for _ in $(seq 1 150); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$BROKER_PID" 2>/dev/null; then
      echo "warren did not exit within 15 s of SIGTERM"; status=1
      kill -KILL "$BROKER_PID" 2>/dev/null
    fi
    wait "$BROKER_PID"; broker_status=$?
    if [ "$broker_status" -ne 0 ]; then echo "warren exited with status $broker_status after SIGTERM"; status=1; fi
  fi
  BROKER_PID=""
  if [ "${WARREN_SANITIZE:-0}" = 1 ] &&
     grep -qE 'runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer' "$WORK/broker.log"; then
    echo "sanitizer report in warren's output"; status=1
  fi
  if [ "$status" -ne 0 ]; then
    echo "----- warren output (last 200 lines) -----"; tail -n 200 "$WORK/broker.log"; echo "-----"
  fi
fi

echo "amqp091-go: $passed passed, $failed failed, $skipped skipped"
exit "$status"
