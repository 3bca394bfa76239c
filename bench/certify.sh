#!/usr/bin/env bash
# Certification benchmark: wall-clock time of one complete ACME certification
# (new account, new order, http-01 validation, finalize, certificate download),
# each with a fresh account and state directory, for
#   certbot      certbot certonly --standalone      against Pebble
#   lego         lego --http run                    against Pebble
#   quire        quire cert renew --dry-run (acme)  against Pebble
#   quire-local  quire cert renew --dry-run (local) against quire's own CA
#   lego-local   lego --http run                    against quire's own CA,
#                run standalone (`quire local-ca`) for the whole benchmark
# all on loopback, in the same run, rounds alternating between the clients.
#
#   bench/certify.sh [N]        N certifications per client (default 5)
#
# Environment:
#   CERTIFY_ONLY="certbot lego"  run only these clients (space or comma
#                 separated; any of: certbot lego quire quire-local lego-local;
#                 default all)
#   QUIRE_BIN=path    use this binary instead of running cargo build
#   KEEP=1            keep the temp dir (logs, certificates) and print its path
#   SUMMARY_FILE=path append the summary line(s) to path (bench/all.sh's table)
#
# Pebble (Debian's package) runs with PEBBLE_VA_NOSLEEP=1 (no random 0-15 s
# sleep before each validation), PEBBLE_WFE_NONCEREJECT=0 (no badNonce
# retries) and PEBBLE_AUTHZREUSE=0; validation is real (no
# PEBBLE_VA_ALWAYS_VALID). Its HTTPS endpoint gets a throwaway CA made in the
# temp dir; the clients trust it through REQUESTS_CA_BUNDLE (certbot),
# LEGO_CA_CERTIFICATES (lego) and QUIRE_ACME_ROOTS (quire).
# The certified name is `localhost`: Pebble resolves it from /etc/hosts, so
# validation connects to 127.0.0.1 and no DNS query leaves the machine.
# Ports (127.0.0.1): Pebble ACME 14000, management 15000, http-01 validation
# 15002 (each client's challenge server listens there in turn), tls-alpn-01
# 15001 (unused); quire's local CA 18445 (in each quire-local run), the
# standalone local CA for lego-local 18447 (validating http-01 on 15002).
#
# Client time is mostly their fixed waits, not protocol work: certbot sleeps
# 1 s before its first authorization poll and 1 s before its first order poll,
# and takes 0.5 s to stop its standalone server; lego polls the order every
# 500 ms after finalize, and polls the authorization again only after 5 s when
# its challenge POST still answers "pending" (Pebble sends no Retry-After
# there), so its times cluster near 0.1 s, 0.6 s and 5.6-6.1 s: the median of
# a few runs swings between them; use a larger N for lego. quire's local CA
# validates while it answers the challenge POST (up to 500 ms) and answers with
# the outcome, so lego-local should not pay those 5 s.
# Not part of the test suite.
set -euo pipefail

N="${1:-5}"
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [N]   (N: certifications per client, >= 1)" >&2; exit 1; }
ALL_CLIENTS="certbot lego quire quire-local lego-local"
ONLY="${CERTIFY_ONLY:-$ALL_CLIENTS}"
CLIENTS=()
for c in ${ONLY//,/ }; do
    case " $ALL_CLIENTS " in
        *" $c "*) CLIENTS+=("$c") ;;
        *) echo "CERTIFY_ONLY: unknown client \`$c\`; use some of: $ALL_CLIENTS" >&2; exit 1 ;;
    esac
done
[ "${#CLIENTS[@]}" -gt 0 ] || { echo "CERTIFY_ONLY names no client; use some of: $ALL_CLIENTS" >&2; exit 1; }
wants() { case " ${CLIENTS[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

DOMAIN=localhost
PEBBLE_PORT=14000
PEBBLE_MGMT=15000
HTTP01_PORT=15002
TLSALPN_PORT=15001
LOCAL_CA_PORT=18445
LEGO_CA_PORT=18447
RUN_TIMEOUT=120     # seconds for one certification before it counts as failed

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
need curl curl
need openssl openssl
need python3 python3
need timeout coreutils
if wants certbot || wants lego || wants quire; then need pebble pebble; fi
if wants certbot; then need certbot certbot; fi
if wants lego || wants lego-local; then need lego lego; fi

# Pebble validates http://localhost:PORT/...: its Go resolver must find
# localhost in /etc/hosts, or it would ask the system's DNS server.
if ! grep -Eq '^[[:space:]]*127\.0\.0\.1[[:space:]]+(.*[[:space:]])?localhost([[:space:]]|$)' /etc/hosts; then
    echo "/etc/hosts has no '127.0.0.1 localhost' line; Pebble's validation needs it" >&2
    exit 1
fi

require_free_ports "$PEBBLE_PORT" "$PEBBLE_MGMT" "$HTTP01_PORT" "$TLSALPN_PORT" "$LOCAL_CA_PORT" \
    "$LEGO_CA_PORT"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/quire-bench-certify.XXXXXX")"
PPID_PEBBLE=""
LOCAL_CA_PID=""
cleanup() {
    [ -z "$PPID_PEBBLE" ] || stop_pid "$PPID_PEBBLE"
    [ -z "$LOCAL_CA_PID" ] || stop_pid "$LOCAL_CA_PID"
    remove_tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- quire
QUIRE=""
if wants quire || wants quire-local || wants lego-local; then
    QUIRE="$(quire_binary "$REPO")"
fi

# ---------------------------------------------------------------- pebble
if wants certbot || wants lego || wants quire; then
    # A throwaway CA and a certificate for Pebble's HTTPS endpoints
    # (127.0.0.1, ::1, localhost); Debian's package ships no test certificate.
    (
        cd "$TMP"
        umask 077
        openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -keyout https-ca.key -out https-ca.pem -days 2 -subj "/CN=pebble bench HTTPS CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -keyout pebble.key -out pebble.csr -subj "/CN=127.0.0.1" 2>/dev/null
        cat >pebble.ext <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,IP:::1,DNS:localhost
EOF
        openssl x509 -req -in pebble.csr -CA https-ca.pem -CAkey https-ca.key \
            -set_serial "0x$(openssl rand -hex 8)" -days 2 -sha256 \
            -extfile pebble.ext -out pebble.pem 2>/dev/null
        openssl verify -CAfile https-ca.pem pebble.pem >/dev/null
    ) || { echo "making Pebble's HTTPS certificate failed" >&2; exit 1; }
    HTTPS_CA="$TMP/https-ca.pem"
    cat >"$TMP/pebble.json" <<EOF
{
  "pebble": {
    "listenAddress": "127.0.0.1:$PEBBLE_PORT",
    "managementListenAddress": "127.0.0.1:$PEBBLE_MGMT",
    "certificate": "$TMP/pebble.pem",
    "privateKey": "$TMP/pebble.key",
    "httpPort": $HTTP01_PORT,
    "tlsPort": $TLSALPN_PORT,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false
  }
}
EOF
    PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
        pebble -config "$TMP/pebble.json" >"$TMP/pebble.log" 2>&1 &
    PPID_PEBBLE=$!
    DIR_URL="https://127.0.0.1:$PEBBLE_PORT/dir"
    up=0
    for _ in $(seq 200); do # 20 s
        if curl -sf --max-time 2 --cacert "$HTTPS_CA" -o /dev/null "$DIR_URL"; then up=1; break; fi
        kill -0 "$PPID_PEBBLE" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$up" != 1 ]; then
        echo "pebble did not answer on $DIR_URL ; its log:" >&2
        cat "$TMP/pebble.log" >&2
        exit 1
    fi
    # Pebble's issuing chain (new keys every start), to check what the
    # clients download.
    curl -sf --max-time 5 --cacert "$HTTPS_CA" -o "$TMP/pebble-root.pem" \
        "https://127.0.0.1:$PEBBLE_MGMT/roots/0"
    curl -sf --max-time 5 --cacert "$HTTPS_CA" -o "$TMP/pebble-intermediate.pem" \
        "https://127.0.0.1:$PEBBLE_MGMT/intermediates/0"
fi

# ---------------------------------------------------------------- local CA
# quire's local CA on its own, as README.md describes for trying other ACME
# clients: its root (made at its first start, in the temp dir) is what lego
# trusts, for the CA's HTTPS endpoint and for the chain it issues.
if wants lego-local; then
    LOCAL_CA_DIR="$TMP/local-ca-data"
    LOCAL_ROOT="$LOCAL_CA_DIR/local-ca/root.pem"
    LOCAL_DIR_URL="https://127.0.0.1:$LEGO_CA_PORT/directory"
    "$QUIRE" local-ca --data-dir "$LOCAL_CA_DIR" --listen "127.0.0.1:$LEGO_CA_PORT" \
        --http-port "$HTTP01_PORT" >"$TMP/local-ca.log" 2>&1 &
    LOCAL_CA_PID=$!
    up=0
    for _ in $(seq 100); do # 10 s
        if [ -s "$LOCAL_ROOT" ] &&
            curl -sf --max-time 2 --cacert "$LOCAL_ROOT" -o /dev/null "$LOCAL_DIR_URL"; then
            up=1; break
        fi
        kill -0 "$LOCAL_CA_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$up" != 1 ]; then
        echo "quire local-ca did not answer on $LOCAL_DIR_URL ; its log:" >&2
        cat "$TMP/local-ca.log" >&2
        exit 1
    fi
fi

# ---------------------------------------------------------------- clients
# Each run gets a fresh directory; the command's stdout and stderr go to files
# there, and a failure aborts the benchmark with them.
quire_config() { # quire_config DIR MODE -> DIR/quire.toml
    local dir="$1" mode="$2" url=""
    [ "$mode" != acme ] || url="directory_url = $(toml_str "$DIR_URL")"
    cat >"$dir/quire.toml" <<EOF
[tls]
mode = "$mode"
$url
[domains]
names = ["$DOMAIN"]
[listen]
http = "127.0.0.1:$HTTP01_PORT"
https = "127.0.0.1:0"
local_ca = "127.0.0.1:$LOCAL_CA_PORT"
$(example_paths "$REPO" "$dir/data")
EOF
}
client_cmd() { # client_cmd DIR: sets CMD and ENVS (arrays) for one run of $CLIENT
    local dir="$1/state"
    mkdir -p "$dir"
    case "$CLIENT" in
        certbot)
            ENVS=(REQUESTS_CA_BUNDLE="$HTTPS_CA")
            CMD=(certbot certonly --standalone --non-interactive --agree-tos
                 --register-unsafely-without-email --server "$DIR_URL"
                 --http-01-address 127.0.0.1 --http-01-port "$HTTP01_PORT"
                 --key-type ecdsa --elliptic-curve secp256r1
                 --config-dir "$dir/config" --work-dir "$dir/work" --logs-dir "$dir/logs"
                 -d "$DOMAIN") ;;
        lego)
            ENVS=(LEGO_CA_CERTIFICATES="$HTTPS_CA")
            CMD=(lego --server "$DIR_URL" --accept-tos --email bench@example.com
                 --key-type ec256 --domains "$DOMAIN"
                 --http --http.port "127.0.0.1:$HTTP01_PORT" --path "$dir" run) ;;
        lego-local)
            ENVS=(LEGO_CA_CERTIFICATES="$LOCAL_ROOT")
            CMD=(lego --server "$LOCAL_DIR_URL" --accept-tos --email bench@example.com
                 --key-type ec256 --domains "$DOMAIN"
                 --http --http.port "127.0.0.1:$HTTP01_PORT" --path "$dir" run) ;;
        quire)
            quire_config "$1" acme
            ENVS=(QUIRE_ACME_ROOTS="$HTTPS_CA" RUST_LOG="${RUST_LOG:-warn}")
            CMD=("$QUIRE" cert renew --dry-run --config "$1/quire.toml") ;;
        quire-local)
            quire_config "$1" local
            ENVS=()
            CMD=("$QUIRE" cert renew --dry-run --config "$1/quire.toml") ;;
    esac
}
issued_cert() { # issued_cert CLIENT DIR -> path of the downloaded chain, or ""
    case "$1" in
        certbot) echo "$2/state/config/live/$DOMAIN/fullchain.pem" ;;
        lego|lego-local) echo "$2/state/certificates/$DOMAIN.crt" ;;
        *) echo "" ;;
    esac
}
issued_by() { # issued_by CLIENT CERT: verifies CERT (lego's includes its chain) against the CA
    case "$1" in
        lego-local) openssl verify -CAfile "$LOCAL_ROOT" -untrusted "$2" "$2" ;;
        *) openssl verify -CAfile "$TMP/pebble-root.pem" \
               -untrusted "$TMP/pebble-intermediate.pem" "$2" ;;
    esac
}
run() { # run CLIENT ROUND: one timed certification, appends to $TMP/times
    CLIENT="$1"
    local round="$2" dir="$TMP/$1-$2" t0 t1 rc=0 cert
    mkdir -p "$dir"
    client_cmd "$dir"
    t0="${EPOCHREALTIME/./}"
    env "${ENVS[@]}" timeout "$RUN_TIMEOUT" "${CMD[@]}" \
        >"$dir/stdout" 2>"$dir/stderr" </dev/null || rc=$?
    t1="${EPOCHREALTIME/./}"
    if [ "$rc" != 0 ]; then
        local why="exit $rc"
        [ "$rc" != 124 ] || why="timed out after ${RUN_TIMEOUT}s"
        echo "$CLIENT run $round failed ($why): ${CMD[*]}" >&2
        echo "--- its stderr:" >&2
        cat "$dir/stderr" >&2
        if [ -s "$dir/stdout" ]; then
            echo "--- its stdout (last 20 lines):" >&2
            tail -n 20 "$dir/stdout" >&2
        fi
        case "$CLIENT" in
            quire-local) ;;
            lego-local)
                echo "--- quire local-ca log (last 20 lines):" >&2
                tail -n 20 "$TMP/local-ca.log" >&2 ;;
            *)
                echo "--- pebble log (last 20 lines):" >&2
                grep -av 'calling handler' "$TMP/pebble.log" | tail -n 20 >&2 ;;
        esac
        exit 1
    fi
    cert="$(issued_cert "$CLIENT" "$dir")"
    if [ -n "$cert" ]; then
        if [ ! -s "$cert" ] || ! issued_by "$CLIENT" "$cert" >/dev/null 2>&1 ||
            ! openssl x509 -in "$cert" -noout -ext subjectAltName 2>/dev/null | grep -q "DNS:$DOMAIN"; then
            echo "$CLIENT run $round exited 0 but $cert is not a certificate for $DOMAIN" \
                 "from its CA" >&2
            exit 1
        fi
    fi
    local ms=$(( (t1 - t0) / 1000 ))
    echo "$CLIENT round $round: $ms ms" >&2
    echo "$CLIENT $round $ms" >>"$TMP/times"
}

: >"$TMP/times"
for r in $(seq "$N"); do
    for c in "${CLIENTS[@]}"; do run "$c" "$r"; done
done

# ---------------------------------------------------------------- report
VERSIONS=()
[ -z "$QUIRE" ] || VERSIONS+=("$(quire_version "$QUIRE")")
VERSIONS+=("$(peer_version pebble)" "$(peer_version certbot)" "$(peer_version lego)")
echo
machine_banner "${VERSIONS[@]}"
python3 - "$TMP" "$N" "$(nproc)" "${CLIENTS[@]}" <<'EOF'
import os, statistics, sys
tmp, n, cpus, *clients = sys.argv[1:]
path = os.path.join(tmp, "times")
times = {c: [] for c in clients}
for line in open(path):
    c, _, ms = line.split()
    times[c].append(int(ms))
LABEL = {
    "certbot": "certbot (pebble)",
    "lego": "lego (pebble)",
    "quire": "quire (pebble)",
    "quire-local": "quire (local CA)",
    "lego-local": "lego (local CA)",
}
# Each client is compared with quire against the same CA.
BASE = {"certbot": "quire", "lego": "quire", "quire": "quire",
        "quire-local": "quire-local", "lego-local": "quire-local"}
med = {c: statistics.median(v) for c, v in times.items()}
print(f"ACME certification of `localhost` (new account, order, http-01, finalize, "
      f"download), {n} per client, fresh state each, rounds alternating; nproc {cpus}")
print()
print("per run ms:")
for c in clients:
    print(f"  {LABEL[c]:<18}" + " ".join(f"{x:>6}" for x in times[c]))
print()
hdr = f"{'client':<20}{'runs':>5}{'median ms':>11}{'min ms':>9}{'max ms':>9}{'x quire, same CA':>18}"
print(hdr)
print("-" * len(hdr))
for c in clients:
    v = times[c]
    base = BASE[c]
    ratio = f"{med[c] / med[base]:.2f}" if base in med and med[base] > 0 else "-"
    print(f"{LABEL[c]:<20}{len(v):>5}{med[c]:>11.0f}{min(v):>9}{max(v):>9}{ratio:>18}")
print()
print("x quire, same CA: this client's median / quire's median against the same CA (Pebble:\n"
      "  certbot/quire, lego/quire; local CA: lego/quire); '-' when that quire did not run.")
if "lego" in med and "lego-local" in med:
    print(f"lego: median {med['lego-local']:.0f} ms against quire's local CA, "
          f"{med['lego']:.0f} ms against Pebble")
print("Wall clock of the whole command, process start to exit. certbot sleeps 1 s before its first\n"
      "  authorization poll and 1 s before its first order poll; lego polls the order every 500 ms and\n"
      "  waits 5 s when its challenge POST still answers 'pending' (no Retry-After from Pebble), so its\n"
      "  times cluster near 0.1 s, 0.6 s and 5.6-6.1 s and a median of few runs is fragile; quire's local\n"
      "  CA validates during the challenge POST and answers with the outcome, sparing lego that wait.")

def summary(*cells):
    """One line of bench/all.sh's table: measurement, quire, nginx, other peer, ratio."""
    with open(os.path.join(tmp, "summary.tsv"), "a") as f:
        f.write("\t".join(cells) + "\n")

for base, peer, what in (("quire", "certbot", "Pebble"), ("quire", "lego", "Pebble"),
                         ("quire-local", "lego-local", "quire's local CA")):
    if base in med and peer in med:
        summary(f"certification against {what}, median of {n} (new account to certificate)",
                f"{med[base]:,.0f} ms", "-", f"{peer.split('-')[0]} {med[peer]:,.0f} ms",
                f"{peer.split('-')[0]}/quire {med[peer] / med[base]:.1f}x the time")
EOF
publish_summary "$TMP/summary.tsv"
