#!/usr/bin/env bash
# Serving benchmark: one article page from `quire serve` vs the same bytes
# from nginx and from Caddy, each serving a static file copy of the page, all
# on loopback, measured with wrk in rounds alternating quire, nginx, Caddy.
#
#   bench/serve-article.sh [PATH]    PATH like /posts/hello/ (default: the
#                                    first /posts/... link on quire's home page)
#
# Environment:
#   DURATION=10s THREADS=2 CONNECTIONS=64 ROUNDS=2   wrk settings
#   QUIRE_BIN=path    use this binary instead of running cargo build
#   KEEP=1            keep the temp dir (logs, wrk output) and print its path
#   SUMMARY_FILE=path append the summary line(s) to path (bench/all.sh's table)
#
# quire listens on 127.0.0.1:18080, nginx on 127.0.0.1:18081, Caddy on
# 127.0.0.1:18085 (plain HTTP/1.1 each).
# Not part of the test suite.
set -euo pipefail

DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
ROUNDS="${ROUNDS:-2}"
QPORT=18080
NPORT=18081
CPORT=18085

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
need curl curl
need wrk wrk
# nginx lives in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"
need nginx nginx
need caddy caddy

require_free_ports "$QPORT" "$((QPORT + 1100))" "$NPORT" "$CPORT"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/quire-bench-serve.XXXXXX")"
QPID=""
NPID=""
CPID=""
cleanup() {
    [ -z "$QPID" ] || stop_pid "$QPID"
    [ -z "$NPID" ] || stop_pid "$NPID"
    [ -z "$CPID" ] || stop_pid "$CPID"
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
wait_up "$QPID" "$TMP/quire.log" "http://127.0.0.1:$QPORT/"

# ---------------------------------------------------------------- article
ARTICLE="$(article_path "http://127.0.0.1:$QPORT" "${1:-}")"
QURL="http://127.0.0.1:$QPORT$ARTICLE"
NURL="http://127.0.0.1:$NPORT$ARTICLE"
CADDY_URL="http://127.0.0.1:$CPORT$ARTICLE"

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
wait_up "$NPID" "$N/logs/error.log" "$NURL"

# ---------------------------------------------------------------- Caddy
# The same file nginx serves, from the same directory.
C="$TMP/caddy"
caddy_config "$C" "http://:$CPORT {
	bind 127.0.0.1
	root * $N/html
	file_server
}"
caddy_start "$C"
CPID=$!
wait_up "$CPID" "$C/caddy.out" "$CADDY_URL"

# ---------------------------------------------------------------- same bytes?
# curl sends no Accept-Encoding unless asked, like wrk: all three answer identity.
probe() { # probe NAME URL -> NAME.body, NAME.headers
    curl -sf -D "$TMP/$1.headers" -o "$TMP/$1.body" "$2"
}
probe q "$QURL"
probe n "$NURL"
probe c "$CADDY_URL"
hdr() { # hdr NAME HEADER -> value or "-"
    local v
    v="$(tr -d '\r' <"$TMP/$1.headers" | grep -i "^$2:" | tail -n1 | cut -d: -f2- | sed 's/^ *//' || true)"
    echo "${v:--}"
}
QSIZE="$(wc -c <"$TMP/q.body")"
NSIZE="$(wc -c <"$TMP/n.body")"
CSIZE="$(wc -c <"$TMP/c.body")"
for s in q n c; do
    case "$s" in q) name=quire url=$QURL ;; n) name=nginx url=$NURL ;; *) name=Caddy url=$CADDY_URL ;; esac
    echo "$name $url: Content-Length $(hdr "$s" content-length)," \
         "body $(wc -c <"$TMP/$s.body") bytes, Content-Type $(hdr "$s" content-type)," \
         "Content-Encoding $(hdr "$s" content-encoding)" >&2
    if [ "$s" != q ] && { [ "$(hdr q content-length)" != "$(hdr "$s" content-length)" ] ||
                          ! cmp -s "$TMP/q.body" "$TMP/$s.body"; }; then
        echo "WARNING: quire and $name do not send the same body" \
             "(Content-Length $(hdr q content-length) vs $(hdr "$s" content-length));" \
             "the comparison is unfair" >&2
    fi
done

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
    run_wrk caddy "$r" "$CADDY_URL"
done
if ! kill -0 "$QPID" 2>/dev/null; then
    echo "WARNING: quire exited during the run; its log:" >&2
    cat "$TMP/quire.log" >&2
fi
for pid in "$NPID" "$CPID"; do
    kill -0 "$pid" 2>/dev/null || echo "WARNING: a peer (PID $pid) exited during the run" >&2
done

# ---------------------------------------------------------------- report
echo
machine_banner "$(quire_version "$QUIRE")" "$(peer_version nginx)" "$(peer_version caddy)" \
    "$(peer_version wrk)"
nginx_tuned "$NPID"
caddy_tuned
python3 - "$TMP" "$ROUNDS" "$ARTICLE" "$QSIZE" "$NSIZE" "$CSIZE" "$(nproc)" \
    "$THREADS" "$CONNECTIONS" "$DURATION" <<'EOF'
import os, re, sys
tmp, rounds, article, qsize, nsize, csize, cpus, t, c, d = sys.argv[1:]
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

SERVERS = ("quire", "nginx", "caddy")
LABEL = {"quire": "quire", "nginx": "nginx", "caddy": "Caddy"}
res = {n: [parse(os.path.join(tmp, f"wrk-{n}-{r}.txt")) for r in range(1, rounds + 1)]
       for n in SERVERS}
print(f"serve {article}: quire {qsize} B, nginx {nsize} B, Caddy {csize} B body; "
      f"wrk -t{t} -c{c} -d{d}, {rounds} round(s) alternating, nproc {cpus}")
print(f"{'server':<8}{'round':>6}{'req/s':>12}{'p99 ms':>10}{'non-2xx':>9}")
for r in range(rounds):
    for n in SERVERS:
        rps, p99, bad = res[n][r]
        print(f"{LABEL[n]:<8}{r + 1:>6}{rps:>12.0f}{p99:>10.2f}{bad:>9}")
mean = {n: sum(x[0] for x in v) / len(v) for n, v in res.items()}
p99 = {n: sum(x[1] for x in v) / len(v) for n, v in res.items()}
for n in SERVERS:
    print(f"{LABEL[n]:<8}{'mean':>6}{mean[n]:>12.0f}{p99[n]:>10.2f}")
for peer in ("nginx", "caddy"):
    ratio = mean["quire"] / mean[peer]
    print(f"req/s ratio quire/{LABEL[peer]} = {ratio:.2f} "
          f"(target >= 1.00: {'ok' if ratio >= 1.0 else 'MISSED'}); "
          f"p99 quire {p99['quire']:.2f} ms vs {LABEL[peer]} {p99[peer]:.2f} ms")

def summary(*cells):
    """One line of bench/all.sh's table: measurement, quire, nginx, other peer, ratio."""
    with open(os.path.join(tmp, "summary.tsv"), "a") as f:
        f.write("\t".join(cells) + "\n")

cell = lambda n: f"{mean[n]:,.0f} req/s, p99 {p99[n]:.2f} ms"
summary(f"plain HTTP/1.1 keep-alive, {qsize} B article (wrk -t{t} -c{c})",
        cell("quire"), cell("nginx"), "Caddy " + cell("caddy"),
        f"quire/nginx {mean['quire'] / mean['nginx']:.2f}, "
        f"quire/Caddy {mean['quire'] / mean['caddy']:.2f}")
EOF
publish_summary "$TMP/summary.tsv"
