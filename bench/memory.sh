#!/usr/bin/env bash
# Memory benchmark: the resident set of `quire serve` in local mode with the
# example site (its own CA, a certificate issued at start), idle, then during
# and after an HTTP/2 load over HTTPS, from /proc/PID/status.
#
#   bench/memory.sh
#
# Environment:
#   IDLE=5           seconds to let the server settle before the idle reading
#   LOAD=10s         h2load duration (-D)
#   CONNECTIONS=64 STREAMS=10 THREADS=2   h2load settings
#   QUIRE_BIN=path    use this binary instead of running cargo build
#   KEEP=1            keep the temp dir (logs) and print its path
#   SUMMARY_FILE=path append the summary line(s) to path (bench/all.sh's table)
#
# quire listens on 127.0.0.1:18090 (http), :18453 (https), :18454 (local CA)
# and :19190 (metrics).
# Not part of the test suite.
set -euo pipefail

IDLE="${IDLE:-5}"
LOAD="${LOAD:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
STREAMS="${STREAMS:-10}"
THREADS="${THREADS:-2}"
HTTP=18090
HTTPS=18453
CA_PORT=18454
METRICS=19190

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
need curl curl
need h2load nghttp2-client

require_free_ports "$HTTP" "$HTTPS" "$CA_PORT" "$METRICS"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/quire-bench-memory.XXXXXX")"
QPID=""
cleanup() {
    [ -z "$QPID" ] || stop_pid "$QPID"
    remove_tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

QUIRE="$(quire_binary "$REPO")"
mkdir -p "$TMP/data"
CFG="$TMP/quire.toml"
cat >"$CFG" <<EOF
[site]
title = "Bench"
base_url = "https://localhost:$HTTPS/"
$(example_paths "$REPO" "$TMP/data")
[listen]
http = "127.0.0.1:$HTTP"
https = "127.0.0.1:$HTTPS"
local_ca = "127.0.0.1:$CA_PORT"
metrics = "127.0.0.1:$METRICS"
[tls]
mode = "local"
EOF

"$QUIRE" serve --config "$CFG" >"$TMP/quire.log" 2>&1 &
QPID=$!
ROOT="$TMP/data/local-ca/root.pem"
URL="https://localhost:$HTTPS/"
wait_up "$QPID" "$TMP/quire.log" "$URL" --cacert "$ROOT"
ARTICLE="$(article_path "http://127.0.0.1:$HTTP" "" 2>/dev/null ||
           curl -sf --cacert "$ROOT" "$URL" | grep -oE 'href="[^"]*/posts/[^"]+"' | head -n1 |
           sed -E 's/^href="//; s/"$//; s#^[a-z]+://[^/]*##')"

# rss KIND: VmRSS and its parts (anonymous, file-backed), in KiB.
rss() {
    awk -v what="$1" '/^(VmRSS|RssAnon|RssFile|VmHWM):/ { v[$1] = $2 }
        END { printf "%s\t%d\t%d\t%d\t%d\n", what, v["VmRSS:"], v["RssAnon:"], v["RssFile:"], v["VmHWM:"] }' \
        "/proc/$QPID/status"
}

sleep "$IDLE"
rss idle >"$TMP/rss.tsv"
echo "h2load -c$CONNECTIONS -m$STREAMS -t$THREADS -D ${LOAD%s} https://localhost:$HTTPS$ARTICLE" >&2
h2load -c"$CONNECTIONS" -m"$STREAMS" -t"$THREADS" -D "${LOAD%s}" \
    "https://localhost:$HTTPS$ARTICLE" >"$TMP/h2load.txt" 2>&1 &
LPID=$!
sleep "$(( ${LOAD%s} / 2 ))"
rss "under load" >>"$TMP/rss.tsv"
wait "$LPID" || { cat "$TMP/h2load.txt" >&2; echo "h2load failed" >&2; exit 1; }
rss "after load" >>"$TMP/rss.tsv"
sleep "$IDLE"
rss "idle again" >>"$TMP/rss.tsv"
RPS="$(sed -nE 's/^finished in [^,]*, ([0-9.]+) req\/s.*/\1/p' "$TMP/h2load.txt")"

echo
machine_banner "$(quire_version "$QUIRE")" "$(peer_version h2load nghttp2-client)"
echo "quire serve, local mode, example site; load: h2load -c$CONNECTIONS -m$STREAMS" \
     "-t$THREADS for $LOAD on $ARTICLE over HTTPS (${RPS:-?} req/s)"
python3 - "$TMP/rss.tsv" "$TMP/summary.tsv" <<'EOF'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
mib = lambda kib: int(kib) / 1024
print(f"{'when':<12}{'RSS MiB':>9}{'anon':>8}{'file':>8}{'peak':>8}")
for when, rss, anon, file, hwm in rows:
    print(f"{when:<12}{mib(rss):>9.1f}{mib(anon):>8.1f}{mib(file):>8.1f}{mib(hwm):>8.1f}")
idle = mib(rows[0][1])
print(f"idle RSS {idle:.1f} MiB (target < 24: {'ok' if idle < 24 else 'MISSED'})")
after = {r[0]: mib(r[1]) for r in rows}
with open(sys.argv[2], "a") as f:
    f.write("\t".join([
        "resident memory, local mode, example site",
        f"idle {idle:.1f} MiB; after 10 s h2 load {after['after load']:.1f} MiB "
        f"(peak {mib(rows[-1][4]):.1f})",
        "-", "-", "-"]) + "\n")
EOF
publish_summary "$TMP/summary.tsv"
