#!/usr/bin/env bash
# HTTPS serving benchmark: one article page from `quire serve` (rustls, manual
# certificate) vs the same bytes from nginx serving a static file (OpenSSL),
# with the same certificate and key, both on loopback, in the same run.
#
#   bench/serve-tls.sh [PATH]    PATH like /posts/hello/
#                                (default: /posts/markdown-tour/)
#
# Four measurements, each alternating quire, nginx, quire, nginx, ...:
#   h1 keep-alive   wrk -t2 -c64 --latency (HTTP/1.1, connections reused)
#   h2              h2load -c64 -m10 -t2 (HTTP/2, 10 streams per connection)
#   new connections wrk with `Connection: close`: one request per connection.
#                   wrk keeps its TLS session across reconnects (SSL_shutdown
#                   then SSL_clear), so these are TLS 1.3 resumptions (PSK with
#                   ECDHE: no certificate, no signature), not full handshakes.
#   full handshakes HS_CLIENTS parallel `openssl s_time -new -www PATH`: a new
#                   session per connection (full handshake with the ECDSA
#                   signature), HTTP/1.0 GET of the article, server closes.
#
# Environment:
#   DURATION=10s ROUNDS=2               length and count of runs
#   THREADS=2 CONNECTIONS=64 STREAMS=10 client settings (the same for both)
#   HS_CLIENTS=16                       parallel s_time processes
#   H2_REQUESTS=200000                  h2load -n, only if it lacks -D
#   QUIRE_BIN=path    use this binary instead of running cargo build
#   KEEP=1            keep the temp dir (logs, outputs) and print its path
#
# A throwaway CA and an ECDSA P-256 certificate for blog.test are made in the
# temp dir; keys never leave it. quire listens on 127.0.0.1:18443 (https),
# :18080 (http) and :19100 (metrics), nginx on 127.0.0.1:18444.
# Not part of the test suite.
set -euo pipefail

DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
STREAMS="${STREAMS:-10}"
ROUNDS="${ROUNDS:-2}"
H2_REQUESTS="${H2_REQUESTS:-200000}"
HS_CLIENTS="${HS_CLIENTS:-16}"
HOST=blog.test
QPORT=18443
QHTTP=18080
QMETRICS=19100
NPORT=18444

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

require_free_ports "$QPORT" "$QHTTP" "$QMETRICS" "$NPORT"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/quire-bench-tls.XXXXXX")"
QPID=""
NPID=""
CLIENT_PIDS=()
cleanup() {
    local pid
    for pid in "${CLIENT_PIDS[@]}"; do stop_pid "$pid"; done
    [ -z "$QPID" ] || stop_pid "$QPID"
    [ -z "$NPID" ] || stop_pid "$NPID"
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
subjectAltName = DNS:$HOST
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
wait_up() { # wait_up NAME PID PORT LOG PATH
    for _ in $(seq 100); do
        if tcurl "$3" -o /dev/null "https://$HOST:$3$5"; then return 0; fi
        if ! kill -0 "$2" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "$1 did not answer on https://$HOST:$3$5 ; its log:" >&2
    cat "$4" >&2
    exit 1
}

"$QUIRE" serve --config "$CFG" >"$TMP/quire.log" 2>&1 &
QPID=$!
wait_up quire "$QPID" "$QPORT" "$TMP/quire.log" /

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
wait_up nginx "$NPID" "$NPORT" "$N/logs/error.log" "$ARTICLE"

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
echo "TLS session resumption (openssl s_client -sess_in): quire $QRESUME, nginx $NRESUME" >&2
QLEN="$(hdr q content-length)"
NLEN="$(hdr n content-length)"
QSIZE="$(wc -c <"$TMP/q.body")"
NSIZE="$(wc -c <"$TMP/n.body")"
for s in q n; do
    case "$s" in q) name=quire port=$QPORT ;; *) name=nginx port=$NPORT ;; esac
    echo "$name https://$HOST:$port$ARTICLE: $(cat "$TMP/$s.proto") (and" \
         "$(cat "$TMP/$s.proto1")), Content-Length $(hdr "$s" content-length)," \
         "body $(wc -c <"$TMP/$s.body") bytes, Content-Type $(hdr "$s" content-type)," \
         "Content-Encoding $(hdr "$s" content-encoding); $(tlsinfo "$s")" >&2
done
for s in q n; do
    case "$(cat "$TMP/$s.proto") $(cat "$TMP/$s.proto1")" in
        "200 HTTP/2 200 HTTP/1.1") ;;
        *) echo "WARNING: expected 200 over HTTP/2 and HTTP/1.1 from $s:" \
                "$(cat "$TMP/$s.proto") / $(cat "$TMP/$s.proto1")" >&2 ;;
    esac
done
if [ "$QLEN" != "$NLEN" ] || ! cmp -s "$TMP/q.body" "$TMP/n.body"; then
    echo "WARNING: the two servers do not send the same body" \
         "(Content-Length $QLEN vs $NLEN); the comparison is unfair" >&2
fi

# ---------------------------------------------------------------- runs
# wrk and h2load connect to the host in the URL and verify no certificate, so
# the URL names 127.0.0.1 and the Host header (HTTP/2: :authority) blog.test.
# (h2load adds a `host:` header instead of replacing :authority; nginx answers
# 400 to that.)
url() { echo "https://127.0.0.1:$1$ARTICLE"; }
port_of() { case "$1" in quire) echo "$QPORT" ;; *) echo "$NPORT" ;; esac; }

H2_MODE=(-n "$H2_REQUESTS")
if h2load --help 2>&1 | grep -q -- '--duration'; then
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
    esac || { cat "$out" >&2; echo "$kind run against $name failed" >&2; exit 1; }
    check_out "$name" "$out"
    if ! kill -0 "$QPID" 2>/dev/null || ! kill -0 "$NPID" 2>/dev/null; then
        echo "a server exited during the run; logs:" >&2
        cat "$TMP/quire.log" "$N/logs/error.log" >&2
        exit 1
    fi
}
for kind in h1 h2 close full; do
    for r in $(seq "$ROUNDS"); do
        run "$kind" quire "$r"
        run "$kind" nginx "$r"
    done
done

# ---------------------------------------------------------------- report
OPENSSL_VERSION="$(openssl version | cut -d' ' -f1-2)"
H2LOAD_VERSION="$(h2load --version 2>&1 | head -n1)"
echo
machine_banner "$(quire_version "$QUIRE")" "$(peer_version nginx)" "$OPENSSL_VERSION" \
    "$(peer_version wrk)" "$H2LOAD_VERSION"
nginx_tuned "$NPID" "http2, ssl_session_cache shared 10m (1 day), session tickets"
python3 - "$TMP" "$ROUNDS" "$ARTICLE" "$QSIZE" "$NSIZE" "$(nproc)" \
    "$THREADS" "$CONNECTIONS" "$STREAMS" "$DURATION" "${H2_MODE[*]}" \
    "$(tlsinfo q)" "$(tlsinfo n)" "$QRESUME" "$NRESUME" "$HS_CLIENTS" <<'EOF'
import os, re, sys
(tmp, rounds, article, qsize, nsize, cpus, t, c, m, d, h2mode,
 qtls, ntls, qres, nres, hs) = sys.argv[1:]
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

KINDS = [
    ("h1", "HTTP/1.1 keep-alive (wrk)", parse_wrk, "p99"),
    ("h2", f"HTTP/2 -m{m} (h2load)", parse_h2load, "mean(max)"),
    ("close", "conn/req, resumed (wrk)", parse_wrk, "p99"),
    ("full", "full handshake (s_time)", parse_s_time, "-"),
]
res = {}
for kind, _, parse, _ in KINDS:
    for n in ("quire", "nginx"):
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

print(f"HTTPS serve {article}: quire {qsize} B, nginx {nsize} B body; "
      f"{t} threads, {c} connections, {d} per run, {rounds} round(s) alternating")
print("openssl is nginx's and the clients' TLS library")
print(f"TLS as an OpenSSL client sees it: quire {qtls}; nginx {ntls}")
print()
print(f"TLS session resumption offered (s_client -sess_in): quire {qres}, nginx {nres}")
print()
print("per run (latency ms: wrk p99; h2load mean (max); s_time none):")
print(f"{'measurement':<26}{'server':<7}{'round':>6}{'req/s':>11}{'latency ms':>16}{'errors':>8}")
for kind, label, _, _ in KINDS:
    for r in range(1, rounds + 1):
        for n in ("quire", "nginx"):
            x = res[kind, n, r]
            print(f"{label:<26}{n:<7}{r:>6}{x['rps']:>11.0f}{fmt_lat(x):>16}{x['bad']:>8}")
print()
hdr = (f"{'measurement':<26}{'quire req/s':>12}{'nginx req/s':>12}{'quire/nginx':>12}"
       f"{'latency':>11}{'quire ms':>15}{'nginx ms':>15}")
print(hdr)
print("-" * len(hdr))
missed = []
for kind, label, _, lat in KINDS:
    avg = {}
    for n in ("quire", "nginx"):
        xs = [res[kind, n, r] for r in range(1, rounds + 1)]
        avg[n] = {"rps": sum(x["rps"] for x in xs) / rounds,
                  "lat": (sum(x["lat"] for x in xs) / rounds
                          if xs[0]["lat"] is not None else None),
                  "max": max(x["max"] for x in xs) if xs[0]["max"] is not None else None,
                  "bad": sum(x["bad"] for x in xs)}
    ratio = avg["quire"]["rps"] / avg["nginx"]["rps"]
    if ratio < 1.0:
        missed.append(label)
    print(f"{label:<26}{avg['quire']['rps']:>12.0f}{avg['nginx']['rps']:>12.0f}{ratio:>12.2f}"
          f"{lat:>11}{fmt_lat(avg['quire']):>15}{fmt_lat(avg['nginx']):>15}")
print()
print("req/s: mean over rounds; wrk latency: p99, mean over rounds; h2load prints no "
      "percentiles:\n  its 'time for request' mean (mean over rounds) and max (max over rounds).")
print("conn/req: wrk -H 'Connection: close', one request per connection; wrk keeps its TLS session\n"
      "  across reconnects, so each is a TLS 1.3 resumption (PSK + ECDHE, no certificate or signature);\n"
      "  wrk's latency clock starts after the handshake, so that p99 leaves the handshake out.")
print(f"full handshake: {hs} parallel `openssl s_time -new -www {article}` (HTTP/1.0, a new session\n"
      "  per connection: ECDHE + ECDSA P-256 signature), connections/s over the wall-clock time.")
errors = {n: sum(x["bad"] for (k, s, r), x in res.items() if s == n) for n in ("quire", "nginx")}
if any(errors.values()):
    print(f"errors (socket errors, non-2xx, failed streams): quire {errors['quire']}, "
          f"nginx {errors['nginx']}")
print("target quire/nginx >= 1.00: " + (f"ok on all {len(KINDS)}" if not missed
      else "MISSED on " + ", ".join(missed)))
EOF
