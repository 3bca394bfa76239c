#!/usr/bin/env bash
# HTTPS serving benchmark: one article page from `quire serve` (rustls, manual
# certificate) vs the same bytes from nginx (OpenSSL) and from Caddy (Go's
# crypto/tls), each serving a static file copy of the page, with the same
# certificate and key, all on loopback, in the same run.
#
#   bench/serve-tls.sh [PATH]    PATH like /posts/hello/
#                                (default: /posts/markdown-tour/)
#
# Five measurements, each alternating quire, nginx, Caddy, quire, ...:
#   h1 keep-alive   wrk -t2 -c64 --latency (HTTP/1.1, connections reused)
#   h2              h2load -c64 -m10 -t2 (HTTP/2, 10 streams per connection)
#   new connections wrk with `Connection: close`: one request per connection.
#                   wrk keeps its TLS session across reconnects (SSL_shutdown
#                   then SSL_clear), so these are TLS 1.3 resumptions (PSK with
#                   ECDHE: no certificate, no signature), not full handshakes.
#   resumed at a fixed rate
#                   bench/tls_rate.rs: new connections at the same rate for
#                   every server (open loop), each a TLS 1.3 resumption with
#                   one GET, latency from when it was due to its last byte.
#                   The rate is RATE_SHARE (60%) of the slowest server's
#                   `new connections` figure in this run, so that no server
#                   is saturated: this is the latency a reader sees, where
#                   wrk's (above) is mostly wrk's own, as on 2 shared cores
#                   wrk is the bottleneck (it takes ~60% of the CPU in a
#                   quire run) and its event loop lags the more connections
#                   the server completes.
#   full handshakes HS_CLIENTS parallel `openssl s_time -new -www PATH`: a new
#                   session per connection (full handshake with the ECDSA
#                   signature), HTTP/1.0 GET of the article, server closes.
#
# Environment:
#   DURATION=10s ROUNDS=2               length and count of runs
#   THREADS=2 CONNECTIONS=64 STREAMS=10 client settings (the same for all)
#   HS_CLIENTS=16                       parallel s_time processes
#   H2_REQUESTS=200000                  h2load -n, only if it lacks -D
#   RATE=n RATE_SHARE=0.6               the fixed rate (conn/s), or its share
#                                       of the slowest `new connections` mean
#   QUIRE_BIN=path    use this binary instead of running cargo build
#   TLS_RATE_BIN=path the same for bench/tls_rate.rs (cargo build --example)
#   KEEP=1            keep the temp dir (logs, outputs) and print its path
#   SUMMARY_FILE=path append the summary line(s) to path (bench/all.sh's table)
#
# A throwaway CA and an ECDSA P-256 certificate for blog.test (and 127.0.0.1:
# wrk sends the URL's address as SNI, and Caddy chooses its certificate by SNI)
# are made in the temp dir; keys never leave it. quire listens on
# 127.0.0.1:18443 (https), :18080 (http) and :19100 (metrics), nginx on
# 127.0.0.1:18444, Caddy on 127.0.0.1:18446.
# Not part of the test suite.
set -euo pipefail

DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
STREAMS="${STREAMS:-10}"
ROUNDS="${ROUNDS:-2}"
H2_REQUESTS="${H2_REQUESTS:-200000}"
HS_CLIENTS="${HS_CLIENTS:-16}"
RATE="${RATE:-}"
RATE_SHARE="${RATE_SHARE:-0.6}"
HOST=blog.test
QPORT=18443
QHTTP=18080
QMETRICS=19100
NPORT=18444
CPORT=18446

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
need curl curl
need openssl openssl
need wrk wrk
need h2load nghttp2-client
need python3 python3
# nginx lives in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"
need nginx nginx
need caddy caddy

require_free_ports "$QPORT" "$QHTTP" "$QMETRICS" "$NPORT" "$CPORT"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/quire-bench-tls.XXXXXX")"
QPID=""
NPID=""
CPID=""
CLIENT_PIDS=()
cleanup() {
    local pid
    for pid in "${CLIENT_PIDS[@]}"; do stop_pid "$pid"; done
    [ -z "$QPID" ] || stop_pid "$QPID"
    [ -z "$NPID" ] || stop_pid "$NPID"
    [ -z "$CPID" ] || stop_pid "$CPID"
    remove_tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- certificates
# A root CA, and a leaf for blog.test signed by it; both ECDSA P-256.
(
    cd "$TMP"
    umask 077
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout root.key -out root.pem -days 2 -subj "/CN=quire bench root CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout privkey.pem -out leaf.csr -subj "/CN=$HOST" 2>/dev/null
    cat >leaf.ext <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:$HOST,IP:127.0.0.1
EOF
    openssl x509 -req -in leaf.csr -CA root.pem -CAkey root.key \
        -set_serial "0x$(openssl rand -hex 8)" -days 2 -sha256 \
        -extfile leaf.ext -out leaf.pem 2>/dev/null
    cat leaf.pem root.pem >fullchain.pem
    openssl verify -CAfile root.pem leaf.pem >/dev/null
) || { echo "making the test certificates failed" >&2; exit 1; }
CA="$TMP/root.pem"
CERT="$TMP/fullchain.pem"
KEY="$TMP/privkey.pem"

# ---------------------------------------------------------------- quire
QUIRE="$(quire_binary "$REPO")"
TLS_RATE="$(tls_rate_binary "$REPO")"
case "$DURATION" in
    *[0-9]s) ;;
    *) echo "DURATION=$DURATION: give seconds, such as 10s (tls-rate takes whole seconds)" >&2; exit 1 ;;
esac

mkdir -p "$TMP/data"
CFG="$TMP/quire.toml"
cat >"$CFG" <<EOF
[site]
title = "Bench"
base_url = "https://$HOST:$QPORT/"
[domains]
names = ["$HOST"]
$(example_paths "$REPO" "$TMP/data")
[listen]
http = "127.0.0.1:$QHTTP"
https = "127.0.0.1:$QPORT"
metrics = "127.0.0.1:$QMETRICS"
[tls]
mode = "manual"
cert_file = $(toml_str "$CERT")
key_file = $(toml_str "$KEY")
EOF

# curl that checks the certificate against the test CA, with blog.test
# resolved to loopback.
tcurl() { # tcurl PORT CURL-ARGS... (the URL is the last argument)
    local port="$1"; shift
    curl -sf --cacert "$CA" --resolve "$HOST:$port:127.0.0.1" "$@"
}
# up PID PORT LOG PATH: waits for https://$HOST:PORT/PATH, checked as tcurl does.
up() {
    wait_up "$1" "$3" "https://$HOST:$2$4" --cacert "$CA" --resolve "$HOST:$2:127.0.0.1"
}

"$QUIRE" serve --config "$CFG" >"$TMP/quire.log" 2>&1 &
QPID=$!
up "$QPID" "$QPORT" "$TMP/quire.log" /

# ---------------------------------------------------------------- article
ARTICLE="${1:-/posts/markdown-tour/}"
case "$ARTICLE" in
    /*) ;;
    *) echo "article path must start with /: $ARTICLE" >&2; exit 1 ;;
esac
case "$ARTICLE" in
    *..*|*\?*|*\#*|*%*) echo "unsupported article path: $ARTICLE" >&2; exit 1 ;;
esac
# curl sends no Accept-Encoding unless asked, like wrk and h2load (which asks
# for nothing by default): the identity body.
tcurl "$QPORT" -o "$TMP/article.html" "https://$HOST:$QPORT$ARTICLE" || {
    echo "GET https://$HOST:$QPORT$ARTICLE from quire failed" >&2; exit 1; }

# ---------------------------------------------------------------- nginx
N="$TMP/nginx"
DOC="$N/html${ARTICLE%/}"
case "$ARTICLE" in
    */) ;;
    *) DOC="$(dirname "$DOC")" ;;
esac
mkdir -p "$N/logs" "$N/tmp" "$DOC"
case "$ARTICLE" in
    */) cp "$TMP/article.html" "$DOC/index.html" ;;
    *) cp "$TMP/article.html" "$N/html$ARTICLE" ;;
esac
NGINX_VERSION="$(nginx -v 2>&1 | sed -nE 's#.*nginx/([0-9][0-9.]*).*#\1#p')"
# `http2 on;` exists since 1.25.1; older ones take `http2` on the listen line.
if [ "$(printf '%s\n' "$NGINX_VERSION" 1.25.1 | sort -V | head -n1)" = 1.25.1 ]; then
    LISTEN="listen 127.0.0.1:$NPORT ssl;
        http2 on;"
else
    LISTEN="listen 127.0.0.1:$NPORT ssl http2;"
fi
SERVER_BLOCK=$(cat <<EOF
    server {
        $LISTEN
        server_name $HOST;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1d;
        ssl_session_tickets on;
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
up "$NPID" "$NPORT" "$N/logs/error.log" "$ARTICLE"

# ---------------------------------------------------------------- Caddy
# The same file nginx serves, from the same directory. Any Host (s_time's
# HTTP/1.0 requests carry none); default_sni for the clients that send no SNI
# (h2load and s_time, given an address).
C="$TMP/caddy"
caddy_config "$C" "https://:$CPORT {
	bind 127.0.0.1
	tls $CERT $KEY
	root * $N/html
	file_server
}" "	default_sni $HOST"
caddy_start "$C"
CPID=$!
up "$CPID" "$CPORT" "$C/caddy.out" "$ARTICLE"

# ---------------------------------------------------------------- same bytes?
probe() { # probe NAME PORT -> NAME.body, NAME.headers, NAME.proto
    tcurl "$2" --http2 -D "$TMP/$1.headers" -o "$TMP/$1.body" \
        -w '%{http_code} HTTP/%{http_version}' "https://$HOST:$2$ARTICLE" >"$TMP/$1.proto" || {
        echo "GET https://$HOST:$2$ARTICLE failed for $1" >&2; exit 1; }
    tcurl "$2" --http1.1 -o /dev/null -w '%{http_code} HTTP/%{http_version}' \
        "https://$HOST:$2$ARTICLE" >"$TMP/$1.proto1"
    # The TLS version and cipher suite that an OpenSSL client gets.
    timeout 10 openssl s_client -brief -connect "127.0.0.1:$2" -servername "$HOST" \
        -CAfile "$CA" </dev/null >"$TMP/$1.tls" 2>&1 || true
}
probe q "$QPORT"
probe n "$NPORT"
probe c "$CPORT"
hdr() { # hdr NAME HEADER -> value or "-"
    local v
    v="$(tr -d '\r' <"$TMP/$1.headers" | grep -i "^$2:" | tail -n1 | cut -d: -f2- | sed 's/^ *//' || true)"
    echo "${v:--}"
}
tlsinfo() { # tlsinfo NAME -> "TLSv1.3 TLS_AES_256_GCM_SHA384, group X25519"
    local f="$TMP/$1.tls" v c g
    v="$(sed -nE 's/^Protocol version: *//p' "$f" | head -n1)"
    c="$(sed -nE 's/^Ciphersuite: *//p' "$f" | head -n1)"
    g="$(sed -nE 's/^(Negotiated TLS1.3 group|Server Temp Key): *//p' "$f" | head -n1)"
    echo "${v:-?} ${c:-?}${g:+, key exchange $g}"
}
resumes() { # resumes PORT -> "yes" when a second connection resumes the session
    local s="$TMP/sess-$1.pem" req='GET / HTTP/1.0\r\nHost: '"$HOST"'\r\n\r\n'
    # A request, read until the server closes (-ign_eof), makes s_client read
    # the TLS 1.3 session tickets.
    printf '%b' "$req" | timeout 10 openssl s_client -ign_eof -connect "127.0.0.1:$1" \
        -servername "$HOST" -CAfile "$CA" -sess_out "$s" >/dev/null 2>&1 || true
    [ -s "$s" ] || { echo "no (no session)"; return; }
    printf '%b' "$req" | timeout 10 openssl s_client -ign_eof -connect "127.0.0.1:$1" \
        -servername "$HOST" -CAfile "$CA" -sess_in "$s" >"$TMP/resume-$1.txt" 2>&1 || true
    if grep -q '^Reused,' "$TMP/resume-$1.txt"; then echo yes; else echo no; fi
}
QRESUME="$(resumes "$QPORT")"
NRESUME="$(resumes "$NPORT")"
CRESUME="$(resumes "$CPORT")"
echo "TLS session resumption (openssl s_client -sess_in): quire $QRESUME, nginx $NRESUME," \
     "Caddy $CRESUME" >&2
QSIZE="$(wc -c <"$TMP/q.body")"
NSIZE="$(wc -c <"$TMP/n.body")"
CSIZE="$(wc -c <"$TMP/c.body")"
name_of() { case "$1" in q) echo quire ;; n) echo nginx ;; *) echo Caddy ;; esac; }
for s in q n c; do
    name="$(name_of "$s")"
    case "$s" in q) port=$QPORT ;; n) port=$NPORT ;; *) port=$CPORT ;; esac
    echo "$name https://$HOST:$port$ARTICLE: $(cat "$TMP/$s.proto") (and" \
         "$(cat "$TMP/$s.proto1")), Content-Length $(hdr "$s" content-length)," \
         "body $(wc -c <"$TMP/$s.body") bytes, Content-Type $(hdr "$s" content-type)," \
         "Content-Encoding $(hdr "$s" content-encoding); $(tlsinfo "$s")" >&2
done
for s in q n c; do
    case "$(cat "$TMP/$s.proto") $(cat "$TMP/$s.proto1")" in
        "200 HTTP/2 200 HTTP/1.1") ;;
        *) echo "WARNING: expected 200 over HTTP/2 and HTTP/1.1 from $(name_of "$s"):" \
                "$(cat "$TMP/$s.proto") / $(cat "$TMP/$s.proto1")" >&2 ;;
    esac
    if [ "$s" != q ] && { [ "$(hdr q content-length)" != "$(hdr "$s" content-length)" ] ||
                          ! cmp -s "$TMP/q.body" "$TMP/$s.body"; }; then
        echo "WARNING: quire and $(name_of "$s") do not send the same body" \
             "(Content-Length $(hdr q content-length) vs $(hdr "$s" content-length));" \
             "the comparison is unfair" >&2
    fi
done

# ---------------------------------------------------------------- runs
# wrk and h2load connect to the host in the URL and verify no certificate, so
# the URL names 127.0.0.1 and the Host header (HTTP/2: :authority) blog.test.
# (h2load adds a `host:` header instead of replacing :authority; nginx answers
# 400 to that.)
url() { echo "https://127.0.0.1:$1$ARTICLE"; }
port_of() { case "$1" in quire) echo "$QPORT" ;; nginx) echo "$NPORT" ;; *) echo "$CPORT" ;; esac; }

# The help is read whole first: `h2load --help | grep -q` fails under
# pipefail when grep stops reading and h2load dies of SIGPIPE, which left
# every run at H2_REQUESTS requests whatever DURATION said.
H2_MODE=(-n "$H2_REQUESTS")
H2_HELP="$(h2load --help 2>&1 || true)"
if [[ "$H2_HELP" == *--duration* ]]; then
    H2_MODE=(-D "$DURATION")
fi

# s_time takes whole seconds.
if [[ "$DURATION" =~ ^([0-9]+)s?$ ]]; then
    SECS="${BASH_REMATCH[1]}"
elif [[ "$DURATION" =~ ^([0-9]+)m$ ]]; then
    SECS=$((BASH_REMATCH[1] * 60))
else
    SECS=0
fi
[ "$SECS" -gt 0 ] || { echo "DURATION must be like 10s, 10 or 2m: $DURATION" >&2; exit 1; }

s_time_run() { # s_time_run PORT OUT: HS_CLIENTS parallel s_time -new, wall clock
    local i start end
    CLIENT_PIDS=()
    start="$(date +%s.%N)"
    for i in $(seq "$HS_CLIENTS"); do
        openssl s_time -connect "127.0.0.1:$1" -new -time "$SECS" \
            -www "$ARTICLE" >"$2.$i" 2>&1 &
        CLIENT_PIDS+=("$!")
    done
    for i in "${CLIENT_PIDS[@]}"; do wait "$i" || true; done
    CLIENT_PIDS=()
    end="$(date +%s.%N)"
    { echo "wall $start $end clients $HS_CLIENTS"; cat "$2".*; } >"$2"
    rm -f "$2".*
}
check_out() { # check_out NAME OUT: fail on an unusable run, warn on errors
    if grep -qE 'Non-2xx|Socket errors|[1-9][0-9]* (failed|errored|timeout)|[1-9][0-9]* [345]xx' "$2"; then
        grep -E 'Non-2xx|Socket errors|^requests:|^status codes:' "$2" | sed "s/^/  $1: /" >&2
    fi
}
run() { # run KIND NAME ROUND
    local kind="$1" name="$2" round="$3" out="$TMP/$1-$2-$3.txt"
    local target
    target="$(url "$(port_of "$name")")"
    echo "$kind $name round $round: $target" >&2
    case "$kind" in
        h1)
            wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
                -H "Host: $HOST" "$target" >"$out" 2>&1 ;;
        close)
            wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
                -H "Host: $HOST" -H 'Connection: close' "$target" >"$out" 2>&1 ;;
        h2)
            h2load "${H2_MODE[@]}" -c "$CONNECTIONS" -m "$STREAMS" -t "$THREADS" \
                -H ":authority: $HOST" "$target" >"$out" 2>&1 ;;
        full)
            s_time_run "$(port_of "$name")" "$out" ;;
        rate)
            "$TLS_RATE" "127.0.0.1:$(port_of "$name")" "$HOST" "$ARTICLE" "$CA" \
                "$RATE" "${DURATION%s}" >"$out" 2>&1 ;;
    esac || { cat "$out" >&2; echo "$kind run against $name failed" >&2; exit 1; }
    # tls-rate fails the run itself on any error.
    [ "$kind" = rate ] || check_out "$name" "$out"
    if ! kill -0 "$QPID" 2>/dev/null || ! kill -0 "$NPID" 2>/dev/null ||
        ! kill -0 "$CPID" 2>/dev/null; then
        echo "a server exited during the run; logs:" >&2
        cat "$TMP/quire.log" "$N/logs/error.log" "$C/caddy.out" >&2
        exit 1
    fi
}
fixed_rate() { # fixed_rate: RATE_SHARE of the slowest server's mean `close` req/s
    local n r sum min=""
    for n in quire nginx caddy; do
        sum=0
        for r in $(seq "$ROUNDS"); do
            sum="$(awk -v s="$sum" '/^Requests\/sec:/ {print s + $2}' "$TMP/close-$n-$r.txt")"
        done
        min="$(awk -v m="$min" -v x="$(awk -v s="$sum" -v r="$ROUNDS" 'BEGIN {print s / r}')" \
            'BEGIN {print (m == "" || x < m) ? x : m}')"
    done
    awk -v m="$min" -v f="$RATE_SHARE" 'BEGIN {printf "%d\n", m * f}'
}
for kind in h1 h2 close rate full; do
    if [ "$kind" = rate ] && [ -z "$RATE" ]; then
        RATE="$(fixed_rate)"
        echo "fixed rate: $RATE conn/s ($RATE_SHARE of the slowest server's resumed conn/s)" >&2
    fi
    for r in $(seq "$ROUNDS"); do
        run "$kind" quire "$r"
        run "$kind" nginx "$r"
        run "$kind" caddy "$r"
    done
done

# ---------------------------------------------------------------- report
OPENSSL_VERSION="$(openssl version | cut -d' ' -f1-2)"
H2LOAD_VERSION="$(h2load --version 2>&1 | head -n1)"
echo
machine_banner "$(quire_version "$QUIRE")" "$(peer_version nginx)" "$(peer_version caddy)" \
    "$OPENSSL_VERSION" "$(peer_version wrk)" "$H2LOAD_VERSION"
nginx_tuned "$NPID" "http2, ssl_session_cache shared 10m (1 day), session tickets"
caddy_tuned
python3 - "$TMP" "$ROUNDS" "$ARTICLE" "$QSIZE" "$NSIZE" "$CSIZE" \
    "$THREADS" "$CONNECTIONS" "$STREAMS" "$DURATION" \
    "$(tlsinfo q)" "$(tlsinfo n)" "$(tlsinfo c)" "$QRESUME" "$NRESUME" "$CRESUME" \
    "$HS_CLIENTS" <<'EOF'
import os, re, sys
(tmp, rounds, article, qsize, nsize, csize, t, c, m, d,
 qtls, ntls, ctls, qres, nres, cres, hs) = sys.argv[1:]
rounds = int(rounds)
UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
NUM = r"([0-9.]+)(us|ms|s|m)"

def ms(value, unit):
    return float(value) * UNIT[unit]

def parse_wrk(path, text):
    rps = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M)
    p99 = re.search(r"^\s*99%\s+" + NUM + r"\s*$", text, re.M)
    if not rps or not p99:
        sys.exit(f"cannot parse wrk output {path}:\n{text}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    bad = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return {"rps": float(rps.group(1)), "lat": ms(*p99.groups()), "max": None, "bad": bad}

def parse_h2load(path, text):
    fin = re.search(r"^finished in [0-9.]+(?:us|ms|s|m), ([0-9.]+) req/s", text, re.M)
    req = re.search(r"^time for request:\s+" + NUM + r"\s+" + NUM + r"\s+" + NUM, text, re.M)
    done = re.search(r"^requests: .*?(\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout",
                     text, re.M)
    codes = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    proto = re.search(r"^Application protocol: (\S+)", text, re.M)
    if not fin or not req or not done or not codes:
        sys.exit(f"cannot parse h2load output {path}:\n{text}")
    if not proto or proto.group(1) != "h2":
        sys.exit(f"h2load did not negotiate h2 ({path}):\n{text}")
    lo, hi, mean = ms(*req.groups()[0:2]), ms(*req.groups()[2:4]), ms(*req.groups()[4:6])
    bad = sum(map(int, done.groups()[1:])) + sum(map(int, codes.groups()[1:]))
    if int(done.group(1)) == 0:
        sys.exit(f"h2load: no request succeeded ({path}):\n{text}")
    return {"rps": float(fin.group(1)), "lat": mean, "max": hi, "bad": bad}

def parse_tls_rate(path, text):
    m = re.search(r"^rate=(\d+)/s due=(\d+) done=(\d+) failed=(\d+) resumed=(\d+) p50=([0-9.]+) "
                  r"p90=([0-9.]+) p99=([0-9.]+) p999=([0-9.]+) max=([0-9.]+)", text, re.M)
    if not m:
        sys.exit(f"cannot parse tls-rate output {path}:\n{text}")
    rate, due, done, failed, resumed = map(int, m.groups()[:5])
    p50, p90, p99, p999, top = map(float, m.groups()[5:])
    # tls-rate itself fails a run with more than 1% full handshakes.
    return {"rps": rate * done / due, "lat": p99, "max": top, "p50": p50, "bad": failed}

def parse_s_time(path, text):
    wall = re.search(r"^wall ([0-9.]+) ([0-9.]+) clients (\d+)", text, re.M)
    runs = re.findall(r"^(\d+) connections in \d+ real seconds, (\d+) bytes read per connection",
                      text, re.M)
    if not wall:
        sys.exit(f"cannot parse s_time output {path}:\n{text}")
    clients = int(wall.group(3))
    conns = sum(int(n) for n, _ in runs)
    if conns == 0:
        sys.exit(f"s_time made no connection ({path}):\n{text}")
    # A client that printed no result, or read less than the body per
    # connection, counts as an error.
    bad = clients - len(runs) + sum(1 for _, b in runs if int(b) < int(qsize))
    secs = float(wall.group(2)) - float(wall.group(1))
    return {"rps": conns / secs, "lat": None, "max": None, "bad": bad}

SUMMARY_LABEL = {
    "h1": f"HTTPS HTTP/1.1 keep-alive, {qsize} B article (wrk -t{t} -c{c})",
    "h2": f"HTTPS HTTP/2, {qsize} B article (h2load -c{c} -m{m})",
    "close": "HTTPS one request per resumed connection (wrk)",
    "rate": "HTTPS resumed connections at a fixed rate, latency (tls-rate)",
    "full": f"HTTPS full handshakes ({hs} x openssl s_time)",
}
KINDS = [
    ("h1", "HTTP/1.1 keep-alive (wrk)", parse_wrk, "p99"),
    ("h2", f"HTTP/2 -m{m} (h2load)", parse_h2load, "mean(max)"),
    ("close", "conn/req, resumed (wrk)", parse_wrk, "p99"),
    ("rate", "fixed rate, resumed", parse_tls_rate, "p99"),
    ("full", "full handshake (s_time)", parse_s_time, "-"),
]
SERVERS = ("quire", "nginx", "caddy")
LABEL = {"quire": "quire", "nginx": "nginx", "caddy": "Caddy"}
res = {}
for kind, _, parse, _ in KINDS:
    for n in SERVERS:
        for r in range(1, rounds + 1):
            path = os.path.join(tmp, f"{kind}-{n}-{r}.txt")
            res[kind, n, r] = parse(path, open(path).read())

def fmt_lat(x):
    if x["lat"] is None:
        return "-"
    s = f"{x['lat']:.2f}"
    if x["max"] is not None:
        s += f" ({x['max']:.1f})"
    return s

def summary(*cells):
    """One line of bench/all.sh's table: measurement, quire, nginx, other peer, ratio."""
    with open(os.path.join(tmp, "summary.tsv"), "a") as f:
        f.write("\t".join(cells) + "\n")

def summary_cell(x, lat):
    if lat == "p99":
        return f"{x['rps']:,.0f} req/s, p99 {x['lat']:.2f} ms"
    if lat == "mean(max)":
        return f"{x['rps']:,.0f} req/s, mean {x['lat']:.2f} ms (max {x['max']:.1f})"
    return f"{x['rps']:,.0f} conn/s"

print(f"HTTPS serve {article}: quire {qsize} B, nginx {nsize} B, Caddy {csize} B body; "
      f"{t} threads, {c} connections, {d} per run, {rounds} round(s) alternating")
print("openssl is nginx's and the clients' TLS library")
print(f"TLS as an OpenSSL client sees it: quire {qtls}; nginx {ntls}; Caddy {ctls}")
print()
print(f"TLS session resumption offered (s_client -sess_in): quire {qres}, nginx {nres}, "
      f"Caddy {cres}")
print()
print("per run (latency ms: wrk p99; h2load mean (max); s_time none):")
print(f"{'measurement':<26}{'server':<7}{'round':>6}{'req/s':>11}{'latency ms':>16}{'errors':>8}")
for kind, label, _, _ in KINDS:
    for r in range(1, rounds + 1):
        for n in SERVERS:
            x = res[kind, n, r]
            print(f"{label:<26}{LABEL[n]:<7}{r:>6}{x['rps']:>11.0f}{fmt_lat(x):>16}{x['bad']:>8}")
print()
hdr = (f"{'measurement':<26}{'quire req/s':>12}{'nginx req/s':>12}{'Caddy req/s':>12}"
       f"{'q/nginx':>8}{'q/Caddy':>8}{'latency':>11}{'quire ms':>17}{'nginx ms':>17}"
       f"{'Caddy ms':>17}")
print(hdr)
print("-" * len(hdr))
missed = []
for kind, label, _, lat in KINDS:
    avg = {}
    for n in SERVERS:
        xs = [res[kind, n, r] for r in range(1, rounds + 1)]
        avg[n] = {"rps": sum(x["rps"] for x in xs) / rounds,
                  "lat": (sum(x["lat"] for x in xs) / rounds
                          if xs[0]["lat"] is not None else None),
                  "max": max(x["max"] for x in xs) if xs[0]["max"] is not None else None,
                  "bad": sum(x["bad"] for x in xs)}
    # At a fixed rate every server does the same work: the figure is how
    # fast, peer's p99 over quire's.
    if kind == "rate":
        ratio = {p: avg[p]["lat"] / avg["quire"]["lat"] for p in ("nginx", "caddy")}
    else:
        ratio = {p: avg["quire"]["rps"] / avg[p]["rps"] for p in ("nginx", "caddy")}
    for p in ("nginx", "caddy"):
        if ratio[p] < 1.0:
            missed.append(f"{label} vs {LABEL[p]}")
    print(f"{label:<26}{avg['quire']['rps']:>12.0f}{avg['nginx']['rps']:>12.0f}"
          f"{avg['caddy']['rps']:>12.0f}{ratio['nginx']:>8.2f}{ratio['caddy']:>8.2f}"
          f"{lat:>11}{fmt_lat(avg['quire']):>17}{fmt_lat(avg['nginx']):>17}"
          f"{fmt_lat(avg['caddy']):>17}")
    if kind == "rate":
        cell = lambda x: f"p99 {x['lat']:.2f} ms at {x['rps']:,.0f} conn/s"
        summary(SUMMARY_LABEL[kind], cell(avg["quire"]), cell(avg["nginx"]),
                "Caddy " + cell(avg["caddy"]),
                f"nginx p99/quire p99 {ratio['nginx']:.2f}, Caddy/quire {ratio['caddy']:.2f}")
        continue
    summary(SUMMARY_LABEL[kind], summary_cell(avg["quire"], lat), summary_cell(avg["nginx"], lat),
            "Caddy " + summary_cell(avg["caddy"], lat),
            f"quire/nginx {ratio['nginx']:.2f}, quire/Caddy {ratio['caddy']:.2f}")
print()
print("req/s: mean over rounds; wrk latency: p99, mean over rounds; h2load prints no "
      "percentiles:\n  its 'time for request' mean (mean over rounds) and max (max over rounds).")
print("conn/req: wrk -H 'Connection: close', one request per connection; wrk keeps its TLS session\n"
      "  across reconnects, so each is a TLS 1.3 resumption (PSK + ECDHE, no certificate or signature);\n"
      "  wrk's latency clock starts after the handshake, so that p99 leaves the handshake out.")
print("fixed rate: bench/tls_rate.rs opens resumed connections (one GET each) at the same rate for\n"
      "  every server, each timed from when it was due to its last byte; the rate is 60% (RATE_SHARE)\n"
      "  of the slowest server's conn/req figure, and its q/nginx and q/Caddy columns are the peer's\n"
      "  p99 over quire's (above 1.00: quire answers sooner).")
print(f"full handshake: {hs} parallel `openssl s_time -new -www {article}` (HTTP/1.0, a new session\n"
      "  per connection: ECDHE + ECDSA P-256 signature), connections/s over the wall-clock time.")
errors = {n: sum(x["bad"] for (k, s, r), x in res.items() if s == n) for n in SERVERS}
if any(errors.values()):
    print("errors (socket errors, non-2xx, failed streams): "
          + ", ".join(f"{LABEL[n]} {errors[n]}" for n in SERVERS))
print("target quire/peer >= 1.00: " + (f"ok on all {len(KINDS)} against both" if not missed
      else "MISSED on " + ", ".join(missed)))
EOF
publish_summary "$TMP/summary.tsv"
