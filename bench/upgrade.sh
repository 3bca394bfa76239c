#!/usr/bin/env bash
# What an upgrade costs the readers: wrk loads one `quire serve` (mode off,
# plain HTTP, loopback) in alternating rounds, one plain round and one round
# during which the binary is replaced and quire upgraded (SIGUSR2) UPGRADES
# times. Prints per round the requests completed, wrk's errors (connect, read,
# write, timeout, non-2xx/3xx) and the requests per second, then the ratio of
# the upgrade rounds to the plain rounds measured in the same run.
#
#   bench/upgrade.sh
#
# Environment:
#   DURATION=10 (seconds) THREADS=2 CONNECTIONS=16 ROUNDS=3 UPGRADES=3
#   QUIRE_BIN=path    use this binary instead of running cargo build
#   KEEP=1            keep the temp dir (config, log, wrk output) and print its path
#
# Listens on 127.0.0.1:18084 (metrics 19184). Not part of the test suite.
set -euo pipefail

DURATION="${DURATION:-10}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-16}"
ROUNDS="${ROUNDS:-3}"
UPGRADES="${UPGRADES:-3}"
PORT=18084

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
need wrk wrk
need curl curl

require_free_ports "$PORT" "$((PORT + 1100))"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/quire-bench-upgrade.XXXXXX")"
PID=""
cleanup() {
    [ -z "$PID" ] || stop_pid "$PID"
    remove_tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

QUIRE="$(quire_binary "$REPO")"
mkdir -p "$TMP/bin" "$TMP/data"
install -m 0755 "$QUIRE" "$TMP/bin/quire"
plain_quire_config "$TMP/quire.toml" "$REPO" "$PORT" "$TMP/data"
"$TMP/bin/quire" serve --config "$TMP/quire.toml" --mode off >"$TMP/quire.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null && break
    sleep 0.1
done

# upgrade: installs the binary again over the running one's path, sends
# SIGUSR2, and waits until the old process has exited; PID is then the new one.
upgrade() {
    local seen new
    seen="$(grep -c "has taken over" "$TMP/quire.log" || true)"
    install -m 0755 "$QUIRE" "$TMP/bin/quire.new"
    mv "$TMP/bin/quire.new" "$TMP/bin/quire"
    kill -USR2 "$PID"
    for _ in $(seq 300); do
        [ "$(grep -c "has taken over" "$TMP/quire.log" || true)" -gt "$seen" ] && break
        sleep 0.05
    done
    new="$(grep "has taken over" "$TMP/quire.log" | tail -1 | sed 's/.*upgrade: pid \([0-9]*\) .*/\1/')"
    for _ in $(seq 300); do
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    wait "$PID" 2>/dev/null || true
    PID="$new"
}

# round KIND N: one wrk run; with KIND=upgrade, UPGRADES upgrades spread over it.
round() {
    local kind="$1" n="$2" out="$TMP/wrk-$1-$2.txt"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$PORT/" >"$out" &
    local wrk_pid=$!
    if [ "$kind" = upgrade ]; then
        for _ in $(seq "$UPGRADES"); do
            sleep "$(echo "$DURATION / ($UPGRADES + 1)" | bc -l)"
            upgrade
        done
    fi
    wait "$wrk_pid"
    local requests rps errors non2xx
    requests="$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$out")"
    rps="$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' "$out")"
    errors="$(sed -n 's/.*Socket errors: \(.*\)/\1/p' "$out")"
    non2xx="$(sed -n 's/.*Non-2xx or 3xx responses: \([0-9]*\)/\1/p' "$out")"
    printf '%-8s %d  %9s requests  %10s req/s  errors: %s  non-2xx/3xx: %s\n' \
        "$kind" "$n" "$requests" "$rps" "${errors:-none}" "${non2xx:-0}"
    echo "$kind $rps" >>"$TMP/rates"
}

need bc bc
machine_banner "$(quire_version "$QUIRE")" "$(peer_version wrk)"
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $UPGRADES upgrades per upgrade round"
for n in $(seq "$ROUNDS"); do
    round plain "$n"
    round upgrade "$n"
done
awk '
    { sum[$1] += $2; count[$1]++ }
    END {
        plain = sum["plain"] / count["plain"]; upgrade = sum["upgrade"] / count["upgrade"]
        printf "mean req/s: plain %.0f, with upgrades %.0f, ratio %.3f\n", plain, upgrade, upgrade / plain
    }' "$TMP/rates"
echo "upgrades done: $(grep -c "has taken over" "$TMP/quire.log"), failed: $(grep -c "upgrade: the new binary" "$TMP/quire.log" || true)"
