#!/usr/bin/env bash
# Issue 18's benchmarks in one go, with modest defaults, and one markdown
# table of the results (for README.md's benchmark section):
#   serve-article.sh  an article over plain HTTP/1.1: quire, nginx, Caddy
#   serve-tls.sh      the same over HTTPS: HTTP/1.1, HTTP/2, resumed
#                     connections (closed loop, and latency at a fixed rate),
#                     full handshakes
#   certify.sh        one ACME certification: quire, certbot and lego against
#                     Pebble; quire and lego against quire's local CA; quire
#                     and lego by dns-01 through BIND
#   site-build.sh     building N generated posts: quire, Hugo
#   stats-onoff.sh    serving with statistics on and off
#   import.sh         quire import of N generated Hugo posts vs hugo building them
#   memory.sh         quire's resident memory, idle and after an HTTP/2 load
# one after the other, each alone on the machine.
#
#   bench/all.sh [-o FILE]    the table goes to stdout, and to FILE with -o;
#                             each script's own report goes to stderr
#
# Environment (each run's length; the defaults take about 5 minutes on an
# idle 2-core machine):
#   DURATION=5s ROUNDS=2    each load run and the rounds per server
#                           (serve-article, serve-tls, stats-onoff)
#   CERTIFY_N=5             certifications per client (certify)
#   POSTS=1000 RUNS=3       posts and hyperfine runs per tool (site-build, import)
#   BENCHES="serve-article serve-tls certify site-build import stats-onoff memory"
#                           which to run, in this order
#   QUIRE_BIN=path          use this binary (else one cargo build --release
#                           for all of them)
#   KEEP=1                  keep the temp dirs: all.sh's (each script's
#                           output, where the scripts name their own) and
#                           the scripts' own
# Each script's own variables (THREADS, CONNECTIONS, HS_CLIENTS, ...) pass
# through to it. Ports: those of the scripts, one script at a time.
# Not part of the test suite.
set -euo pipefail

DURATION="${DURATION:-5s}"
ROUNDS="${ROUNDS:-2}"
CERTIFY_N="${CERTIFY_N:-5}"
POSTS="${POSTS:-1000}"
RUNS="${RUNS:-3}"
BENCHES="${BENCHES:-serve-article serve-tls certify site-build import stats-onoff memory}"
ALL_BENCHES="serve-article serve-tls certify site-build import stats-onoff memory"

OUT=""
while getopts 'o:h' opt; do
    case "$opt" in
        o) OUT="$OPTARG" ;;
        *) echo "usage: $0 [-o FILE]   (environment: see the top of $0)" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ "$#" -eq 0 ] || { echo "usage: $0 [-o FILE]" >&2; exit 2; }
for b in $BENCHES; do
    case " $ALL_BENCHES " in
        *" $b "*) ;;
        *) echo "BENCHES: unknown benchmark \`$b\`; use some of: $ALL_BENCHES" >&2; exit 2 ;;
    esac
done
if [ -n "$OUT" ]; then
    # Fail now rather than after the runs.
    : >"$OUT" || { echo "cannot write $OUT" >&2; exit 2; }
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
need python3 python3

TMP="$(mktemp -d "${TMPDIR:-/tmp}/quire-bench-all.XXXXXX")"
cleanup() {
    remove_tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One build for every script.
QUIRE_BIN="$(quire_binary "$REPO")"
export QUIRE_BIN
export SUMMARY_FILE="$TMP/summary.tsv"
: >"$SUMMARY_FILE"

# run_bench NAME: runs bench/NAME.sh with its settings; its report (stdout)
# goes to stderr when it is done, and a failure is noted in the table.
FAILED=()
run_bench() {
    local name="$1" args=() envs=() rc=0 t0 t1
    case "$name" in
        serve-article|serve-tls|stats-onoff)
            envs=(DURATION="$DURATION" ROUNDS="$ROUNDS") ;;
        certify) args=("$CERTIFY_N") ;;
        site-build|import) envs=(RUNS="$RUNS"); args=("$POSTS") ;;
    esac
    echo "== bench/$name.sh ${envs[*]} ${args[*]}" >&2
    t0="$(date +%s)"
    env "${envs[@]}" bash "$HERE/$name.sh" "${args[@]}" \
        >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null || rc=$?
    t1="$(date +%s)"
    if [ "$rc" = 0 ]; then
        cat "$TMP/$name.out" >&2
        echo "== bench/$name.sh done in $((t1 - t0)) s" >&2
    else
        echo "== bench/$name.sh FAILED (exit $rc) after $((t1 - t0)) s; the end of its output:" >&2
        tail -n 30 "$TMP/$name.err" >&2
        FAILED+=("$name")
        printf '%s\t%s\t-\t-\t-\n' "bench/$name.sh" "failed (exit $rc)" >>"$SUMMARY_FILE"
    fi
    echo >&2
}
for b in $BENCHES; do
    run_bench "$b"
done

# ---------------------------------------------------------------- table
# The versions of every peer the scripts compare with (they install the
# missing ones as they run).
BANNER="$(machine_banner "$(quire_version "$QUIRE_BIN")" "$(peer_version nginx)" \
    "$(peer_version caddy)" "$(peer_version pebble)" "$(peer_version certbot)" \
    "$(peer_version lego)" "$(peer_version hugo)" "$(peer_version openssl)" \
    "$(peer_version wrk)" "$(peer_version h2load nghttp2-client)" \
    "$(peer_version hyperfine)")"
SETTINGS="DURATION=$DURATION ROUNDS=$ROUNDS CERTIFY_N=$CERTIFY_N POSTS=$POSTS RUNS=$RUNS"
python3 - "$SUMMARY_FILE" "$BANNER" "$SETTINGS" "$BENCHES" >"$TMP/table.md" <<'EOF'
import datetime, sys
path, banner, settings, benches = sys.argv[1:]

def cell(text):
    return text.replace("|", "\\|") or "-"

print(f"### bench/all.sh, {datetime.date.today().isoformat()}")
print()
for line in banner.splitlines():
    print(line)
    print()
print("| measurement | quire | nginx | Caddy / other peer | ratio |")
print("| --- | --- | --- | --- | --- |")
for line in open(path):
    cells = line.rstrip("\n").split("\t")
    cells += ["-"] * (5 - len(cells))
    print("| " + " | ".join(cell(c) for c in cells[:5]) + " |")
print()
print(f"`{settings} bench/all.sh` ({benches}); all on loopback, the servers measured in "
      "alternating rounds, req/s the mean over rounds, times the median (certification) or mean "
      "(build). Ratios: quire/peer req/s for serving (above 1: quire ahead); the peer's time as a "
      "multiple of quire's for certification; quire's time as a fraction of Hugo's for the build; "
      "req/s with statistics on over off. "
      "Each script's full report has the per-round figures.")
EOF
cat "$TMP/table.md"
[ -z "$OUT" ] || cp "$TMP/table.md" "$OUT"
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "failed: ${FAILED[*]} (their output is above; KEEP=1 keeps it)" >&2
    exit 1
fi
