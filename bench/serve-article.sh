#!/usr/bin/env bash
# Serving benchmark: one article page from `quire serve` vs the same bytes
# from nginx serving a static file, both on loopback, measured with wrk.
#
#   bench/serve-article.sh [PATH]    PATH like /posts/hello/ (default: the
#                                    first /posts/... link on quire's home page)
#
# Environment:
#   DURATION=10s THREADS=2 CONNECTIONS=64 ROUNDS=2   wrk settings
#   QUIRE_BIN=path    use this binary instead of running cargo build
#   KEEP=1            keep the temp dir (logs, wrk output) and print its path
#
# quire listens on 127.0.0.1:18080, nginx on 127.0.0.1:18081.
# Not part of the test suite.
set -euo pipefail

DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
ROUNDS="${ROUNDS:-2}"
QPORT=18080
NPORT=18081

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
need curl curl
need wrk wrk
# nginx lives in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"
need nginx nginx

require_free_ports "$QPORT" "$((QPORT + 1100))" "$NPORT"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/quire-bench-serve.XXXXXX")"
QPID=""
NPID=""
cleanup() {
    [ -z "$QPID" ] || stop_pid "$QPID"
    [ -z "$NPID" ] || stop_pid "$NPID"
    remove_tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- quire
QUIRE="$(quire_binary "$REPO")"

mkdir -p "$TMP/data"
CFG="$TMP/quire.toml"
plain_quire_config "$CFG" "$REPO" "$QPORT" "$TMP/data"

"$QUIRE" serve --config "$CFG" >"$TMP/quire.log" 2>&1 &
QPID=$!
up=0
for _ in $(seq 100); do
    if curl -sf -o /dev/null "http://127.0.0.1:$QPORT/"; then up=1; break; fi
    if ! kill -0 "$QPID" 2>/dev/null; then break; fi
    sleep 0.1
done
if [ "$up" != 1 ]; then
    echo "quire did not answer on http://127.0.0.1:$QPORT/ ; its log:" >&2
    cat "$TMP/quire.log" >&2
    exit 1
fi

# ---------------------------------------------------------------- article
ARTICLE="$(article_path "http://127.0.0.1:$QPORT" "${1:-}")"
QURL="http://127.0.0.1:$QPORT$ARTICLE"
NURL="http://127.0.0.1:$NPORT$ARTICLE"

curl -sf -o "$TMP/article.html" "$QURL" || {
    echo "GET $QURL failed" >&2; exit 1; }

# ---------------------------------------------------------------- nginx
N="$TMP/nginx"
DOC="$N/html${ARTICLE%/}"
mkdir -p "$N/logs" "$N/tmp" "$DOC"
cp "$TMP/article.html" "$DOC/index.html"
SERVER_BLOCK=$(cat <<EOF
    server {
        listen 127.0.0.1:$NPORT;
        server_name localhost;
        root $N/html;
        index index.html;
        location / {
            try_files \$uri \$uri/index.html =404;
        }
    }
EOF
)
nginx_config "$N" "$SERVER_BLOCK"
nginx -t -q -p "$N" -e "$N/logs/error.log" -c "$N/nginx.conf"
nginx -p "$N" -e "$N/logs/error.log" -c "$N/nginx.conf" &
NPID=$!
up=0
for _ in $(seq 100); do
    if curl -sf -o /dev/null "$NURL"; then up=1; break; fi
    if ! kill -0 "$NPID" 2>/dev/null; then break; fi
    sleep 0.1
done
if [ "$up" != 1 ]; then
    echo "nginx did not answer on $NURL ; its log:" >&2
    cat "$N/logs/error.log" >&2
    exit 1
fi

# ---------------------------------------------------------------- same bytes?
# curl sends no Accept-Encoding unless asked, like wrk: both answer identity.
probe() { # probe NAME URL -> NAME.body, NAME.headers
    curl -sf -D "$TMP/$1.headers" -o "$TMP/$1.body" "$2"
}
probe q "$QURL"
probe n "$NURL"
hdr() { # hdr NAME HEADER -> value or "-"
    local v
    v="$(tr -d '\r' <"$TMP/$1.headers" | grep -i "^$2:" | tail -n1 | cut -d: -f2- | sed 's/^ *//' || true)"
    echo "${v:--}"
}
QLEN="$(hdr q content-length)"
NLEN="$(hdr n content-length)"
QSIZE="$(wc -c <"$TMP/q.body")"
NSIZE="$(wc -c <"$TMP/n.body")"
echo "quire $QURL: Content-Length $QLEN, body $QSIZE bytes," \
     "Content-Type $(hdr q content-type), Content-Encoding $(hdr q content-encoding)" >&2
echo "nginx $NURL: Content-Length $NLEN, body $NSIZE bytes," \
     "Content-Type $(hdr n content-type), Content-Encoding $(hdr n content-encoding)" >&2
if [ "$QLEN" != "$NLEN" ] || ! cmp -s "$TMP/q.body" "$TMP/n.body"; then
    echo "WARNING: the two servers do not send the same body" \
         "(Content-Length $QLEN vs $NLEN); the comparison is unfair" >&2
fi

# ---------------------------------------------------------------- wrk
run_wrk() { # run_wrk NAME ROUND URL
    local out="$TMP/wrk-$1-$2.txt"
    echo "wrk $1 round $2: $3" >&2
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$3" >"$out" 2>&1 || {
        cat "$out" >&2; echo "wrk failed" >&2; exit 1; }
    if grep -qE 'Non-2xx|Socket errors' "$out"; then
        grep -E 'Non-2xx|Socket errors' "$out" | sed "s/^/  $1: /" >&2
    fi
}
for r in $(seq "$ROUNDS"); do
    run_wrk quire "$r" "$QURL"
    run_wrk nginx "$r" "$NURL"
done
if ! kill -0 "$QPID" 2>/dev/null; then
    echo "WARNING: quire exited during the run; its log:" >&2
    cat "$TMP/quire.log" >&2
fi

# ---------------------------------------------------------------- report
echo
machine_banner "$(quire_version "$QUIRE")" "$(peer_version nginx)" "$(peer_version wrk)"
nginx_tuned "$NPID"
python3 - "$TMP" "$ROUNDS" "$ARTICLE" "$QSIZE" "$NSIZE" "$(nproc)" \
    "$THREADS" "$CONNECTIONS" "$DURATION" <<'EOF'
import os, re, sys
tmp, rounds, article, qsize, nsize, cpus, t, c, d = sys.argv[1:]
rounds = int(rounds)
UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}

def parse(path):
    text = open(path).read()
    rps = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M)
    p99 = re.search(r"^\s*99%\s+([0-9.]+)(us|ms|s|m)\s*$", text, re.M)
    errs = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if not rps or not p99:
        sys.exit(f"cannot parse wrk output {path}:\n{text}")
    return (float(rps.group(1)), float(p99.group(1)) * UNIT[p99.group(2)],
            int(errs.group(1)) if errs else 0)

res = {n: [parse(os.path.join(tmp, f"wrk-{n}-{r}.txt")) for r in range(1, rounds + 1)]
       for n in ("quire", "nginx")}
print(f"serve {article}: quire {qsize} B, nginx {nsize} B body; "
      f"wrk -t{t} -c{c} -d{d}, nproc {cpus}")
print(f"{'server':<8}{'round':>6}{'req/s':>12}{'p99 ms':>10}{'non-2xx':>9}")
for r in range(rounds):
    for n in ("quire", "nginx"):
        rps, p99, bad = res[n][r]
        print(f"{n:<8}{r + 1:>6}{rps:>12.0f}{p99:>10.2f}{bad:>9}")
mean = {n: sum(x[0] for x in v) / len(v) for n, v in res.items()}
p99 = {n: sum(x[1] for x in v) / len(v) for n, v in res.items()}
for n in ("quire", "nginx"):
    print(f"{n:<8}{'mean':>6}{mean[n]:>12.0f}{p99[n]:>10.2f}")
ratio = mean["quire"] / mean["nginx"]
print(f"req/s ratio quire/nginx = {ratio:.2f} (target >= 1.00: {'ok' if ratio >= 1.0 else 'MISSED'})"
      f"; p99 quire {p99['quire']:.2f} ms vs nginx {p99['nginx']:.2f} ms")
EOF
