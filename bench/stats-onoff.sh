#!/usr/bin/env bash
# What reading statistics cost on the serving path: one article page from two
# `quire serve` processes (mode off, plain HTTP, loopback), one with
# [stats] enabled = true and one with enabled = false, measured with wrk in
# alternating rounds (on, off, on, off, ...). wrk sends a browser User-Agent,
# so every request is recorded as a page view, not as a bot.
# Afterwards `quire stats --days 1` asks the "on" server (through its control
# socket, which flushes first) how many views it counted, to compare with the
# requests wrk completed, and whether any were dropped.
#
#   bench/stats-onoff.sh [PATH]    PATH like /posts/hello/ (default: the
#                                  first /posts/... link on the home page)
#
# Environment:
#   DURATION=10s THREADS=2 CONNECTIONS=64 ROUNDS=3   wrk settings
#   UA='Mozilla/5.0 ...'  the User-Agent wrk sends
#   QUIRE_BIN=path    use this binary instead of running cargo build
#   KEEP=1            keep the temp dir (configs, logs, wrk output) and print its path
#   SUMMARY_FILE=path append the summary line(s) to path (bench/all.sh's table)
#
# stats on: 127.0.0.1:18082, stats off: 127.0.0.1:18083 (metrics 19182, 19183).
# Not part of the test suite.
set -euo pipefail

DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
ROUNDS="${ROUNDS:-3}"
UA="${UA:-Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0}"
ON_PORT=18082
OFF_PORT=18083

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
need curl curl
need wrk wrk
need python3 python3

require_free_ports "$ON_PORT" "$OFF_PORT"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/quire-bench-stats.XXXXXX")"
ON_PID=""
OFF_PID=""
cleanup() {
    [ -z "$ON_PID" ] || stop_pid "$ON_PID"
    [ -z "$OFF_PID" ] || stop_pid "$OFF_PID"
    remove_tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- quire x2
QUIRE="$(quire_binary "$REPO")"

start_quire() { # start_quire NAME PORT STATS_ENABLED; its PID is then in $!
    local name="$1" port="$2" enabled="$3" dir="$TMP/$1"
    mkdir -p "$dir/data"
    plain_quire_config "$dir/quire.toml" "$REPO" "$port" "$dir/data" \
        "$(printf '[stats]\nenabled = %s' "$enabled")"
    "$QUIRE" serve --config "$dir/quire.toml" --mode off >"$dir/quire.log" 2>&1 &
}
start_quire on "$ON_PORT" true
ON_PID=$!
start_quire off "$OFF_PORT" false
OFF_PID=$!
wait_up "$ON_PID" "$TMP/on/quire.log" "http://127.0.0.1:$ON_PORT/"
wait_up "$OFF_PID" "$TMP/off/quire.log" "http://127.0.0.1:$OFF_PORT/"

# ---------------------------------------------------------------- article
# curl's own User-Agent makes these probes bot requests, not views.
ARTICLE="$(article_path "http://127.0.0.1:$ON_PORT" "${1:-}")"
ON_URL="http://127.0.0.1:$ON_PORT$ARTICLE"
OFF_URL="http://127.0.0.1:$OFF_PORT$ARTICLE"
for url in "$ON_URL" "$OFF_URL"; do
    curl -sf -o /dev/null "$url" || {
        echo "GET $url failed" >&2; exit 1; }
done

# ---------------------------------------------------------------- wrk
run_wrk() { # run_wrk NAME ROUND URL
    local out="$TMP/wrk-$1-$2.txt"
    echo "wrk stats $1 round $2: $3" >&2
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
        -H "User-Agent: $UA" "$3" >"$out" 2>&1 || {
        cat "$out" >&2; echo "wrk failed" >&2; exit 1; }
    if grep -qE 'Non-2xx|Socket errors' "$out"; then
        grep -E 'Non-2xx|Socket errors' "$out" | sed "s/^/  $1: /" >&2
    fi
}
FIRST_DAY="$(date -u +%F)"
for r in $(seq "$ROUNDS"); do
    run_wrk on "$r" "$ON_URL"
    run_wrk off "$r" "$OFF_URL"
done
for name in on off; do
    pid="$ON_PID"; [ "$name" = on ] || pid="$OFF_PID"
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "WARNING: quire ($name) exited during the run; its log:" >&2
        cat "$TMP/$name/quire.log" >&2
    fi
done

# ---------------------------------------------------------------- counted
# A run across midnight (UTC) spans two days of statistics.
DAYS=1
[ "$(date -u +%F)" = "$FIRST_DAY" ] || DAYS=2
"$QUIRE" stats --days "$DAYS" --data-dir "$TMP/on/data" >"$TMP/stats.txt" 2>&1 || {
    cat "$TMP/stats.txt" >&2; echo "quire stats failed" >&2; exit 1; }

# ---------------------------------------------------------------- report
echo
machine_banner "$(quire_version "$QUIRE")" "$(peer_version wrk)"
python3 - "$TMP" "$ROUNDS" "$ARTICLE" "$(nproc)" "$THREADS" "$CONNECTIONS" \
    "$DURATION" "$DAYS" <<'EOF'
import os, re, statistics, sys
tmp, rounds, article, cpus, t, c, d, days = sys.argv[1:]
rounds = int(rounds)
UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}

def parse(path):
    text = open(path).read()
    rps = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M)
    total = re.search(r"^\s*(\d+) requests in", text, re.M)
    p99 = re.search(r"^\s*99%\s+([0-9.]+)(us|ms|s|m)\s*$", text, re.M)
    errs = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if not rps or not total or not p99:
        sys.exit(f"cannot parse wrk output {path}:\n{text}")
    return (float(rps.group(1)), int(total.group(1)),
            float(p99.group(1)) * UNIT[p99.group(2)],
            int(errs.group(1)) if errs else 0)

res = {n: [parse(os.path.join(tmp, f"wrk-{n}-{r}.txt")) for r in range(1, rounds + 1)]
       for n in ("on", "off")}
print(f"stats on/off, GET {article}: wrk -t{t} -c{c} -d{d}, nproc {cpus}")
print(f"{'stats':<6}{'round':>6}{'req/s':>12}{'requests':>11}{'p99 ms':>10}{'non-2xx':>9}")
for r in range(rounds):
    for n in ("on", "off"):
        rps, total, p99, bad = res[n][r]
        print(f"{n:<6}{r + 1:>6}{rps:>12.0f}{total:>11}{p99:>10.2f}{bad:>9}")
median = {n: statistics.median(x[0] for x in v) for n, v in res.items()}
for n in ("on", "off"):
    print(f"{n:<6}{'median':>6}{median[n]:>12.0f}")
print(f"req/s ratio on/off (medians) = {median['on'] / median['off']:.3f}")

# What the "on" server counted, from `quire stats`.
text = open(os.path.join(tmp, "stats.txt")).read()
total_row = next((l.split() for l in text.splitlines() if l.startswith("total ")), None)
if not total_row:
    sys.exit(f"no total row in the output of quire stats:\n{text}")
views, bots = int(total_row[1]), int(total_row[5])
requests = sum(x[1] for x in res["on"])
bad = sum(x[3] for x in res["on"])
dropped = re.search(r"^(\d+) views were dropped", text, re.M)
print(f"quire stats --days {days} (stats on): {views} views counted, {bots} bot requests; "
      f"wrk completed {requests} requests ({bad} non-2xx) "
      f"-> counted/requested = {views / requests:.4f}, difference {views - requests:+d}")
if dropped:
    print(f"quire stats: {dropped.group(1)} views were dropped under overload")
else:
    print("quire stats: no dropped views reported")

def summary(*cells):
    """One line of bench/all.sh's table: measurement, quire, nginx, other peer, ratio."""
    with open(os.path.join(tmp, "summary.tsv"), "a") as f:
        f.write("\t".join(cells) + "\n")

summary(f"serving with statistics on vs off, plain HTTP/1.1 (wrk, median of {rounds})",
        f"stats on: {median['on']:,.0f} req/s", "-",
        f"quire, stats off: {median['off']:,.0f} req/s",
        f"on/off {median['on'] / median['off']:.3f}")
EOF
publish_summary "$TMP/summary.tsv"
