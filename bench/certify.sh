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
#   quire-dns01  quire cert renew --dry-run (acme, challenge = "dns-01")
#                                                   against a second Pebble
#   lego-dns01   lego --dns rfc2136 run             against that same Pebble
#   quire-fallback  quire cert renew (acme, two [[tls.issuers]]) whose first
#                CA is down (nothing listens on its port: a stopped CA), so
#                the certificate comes from the second, the http-01 Pebble;
#                a real renewal, not a dry run (a dry run asks one CA only),
#                so it also stores the certificate and writes a backup. Its
#                time against `quire`'s is what the fallback costs.
# all on loopback, in the same run, rounds alternating between the clients.
# The dns-01 pair certifies `a.bench.test` and `*.bench.test` (one name and a
# wildcard, two TXT records) through the same BIND `named`: each client adds
# its `_acme-challenge` TXT records by RFC 2136 update signed with the same
# TSIG key (hmac-sha256), waits as it sees fit, tells the CA, which looks the
# records up in that named, and deletes them; after each run the script asks
# named whether any are left and warns when one is.
#
#   bench/certify.sh [N]        N certifications per client (default 5)
#
# Environment:
#   CERTIFY_ONLY="certbot lego"  run only these clients (space or comma
#                 separated; any of: certbot lego quire quire-local lego-local
#                 quire-dns01 lego-dns01 quire-fallback; default all)
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
# standalone local CA for lego-local 18447 (validating http-01 on 15002);
# dns-01: named 15053 (UDP and TCP), its Pebble ACME 14100, management 15100
# (15101 and 15102 unused).
#
# dns-01 setup, as tests/system/support/bind.rs does it: named (Debian's bind9,
# run in the foreground, as the current user, everything in the temp dir)
# is the primary of zone bench.test, no recursion, and lets the TSIG key
# `quire-bench` (a secret made now with openssl, in the temp dir only) add and
# delete TXT records under it. The zone's NS is ns1.bench.test at 127.0.0.1,
# that is 127.0.0.1:53 where nothing may answer (checked at start): quire
# asks the zone's other authoritative servers too when they are reachable, and
# skips that one at once, as it would an unreachable secondary. Its Pebble
# runs with `-dnsserver 127.0.0.1:15053`, so it resolves the TXT records
# through named and nothing else; it is a second Pebble, not the http-01 one,
# because -dnsserver sends all of Pebble's lookups there, `localhost` for
# http-01 included, which named does not serve.
# lego gets its best settings: RFC2136_POLLING_INTERVAL=0 (default 2 s; lego
# sleeps that long before its first propagation check of each name, then
# between checks), RFC2136_SEQUENCE_INTERVAL=0 (default 60 s: its rfc2136
# provider solves the names one after the other, sleeping that long between
# them), RFC2136_PROPAGATION_TIMEOUT=10 (default 60 s), --dns.resolvers
# 127.0.0.1:15053 (its zone lookup and propagation check ask named, not the
# system's resolver) and --dns.disable-cp: without it lego also asks every NS
# of the zone on port 53, resolving ns1.bench.test through the system
# resolver, traffic that would leave loopback; with it, lego asks named once
# for the TXT record and goes on whatever the answer, where quire waits until
# named answers with every record. quire keeps its defaults (it publishes all
# the records in one update, then polls from 100 ms, doubling). lego's 5 s
# wait after a challenge POST that answers "pending" (below) applies to dns-01
# too, once per name.
# Not part of the test suite.
set -euo pipefail

N="${1:-5}"
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [N]   (N: certifications per client, >= 1)" >&2; exit 1; }
ALL_CLIENTS="certbot lego quire quire-local lego-local quire-dns01 lego-dns01 quire-fallback"
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
DNS_PORT=15053          # named
DNS_PEBBLE_PORT=14100   # the dns-01 Pebble: ACME, management, http-01, tls-alpn-01
DNS_PEBBLE_MGMT=15100
DNS_PEBBLE_HTTP=15102
DNS_PEBBLE_TLS=15101
DNS_ZONE=bench.test
DNS_NAMES=("a.$DNS_ZONE" "*.$DNS_ZONE")   # the first is the canonical one
TSIG_KEY=quire-bench
DOWN_CA_PORT=14300  # quire-fallback's first CA: nothing may listen there
RUN_TIMEOUT=120     # seconds for one certification before it counts as failed

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
need curl curl
need openssl openssl
need python3 python3
need timeout coreutils
wants_dns() { wants quire-dns01 || wants lego-dns01; }
# The clients of the http-01 Pebble.
wants_pebble() { wants certbot || wants lego || wants quire || wants quire-fallback; }
if wants_pebble || wants_dns; then need pebble pebble; fi
if wants certbot; then need certbot certbot; fi
if wants lego || wants lego-local || wants lego-dns01; then need lego lego; fi
if wants_dns; then
    # named lives in /usr/sbin, which a non-root PATH may lack.
    case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin" ;; esac
    need named bind9
    need dig bind9-dnsutils
    need nsupdate bind9-dnsutils
fi

# Pebble validates http://localhost:PORT/...: its Go resolver must find
# localhost in /etc/hosts, or it would ask the system's DNS server.
if ! grep -Eq '^[[:space:]]*127\.0\.0\.1[[:space:]]+(.*[[:space:]])?localhost([[:space:]]|$)' /etc/hosts; then
    echo "/etc/hosts has no '127.0.0.1 localhost' line; Pebble's validation needs it" >&2
    exit 1
fi

require_free_ports "$PEBBLE_PORT" "$PEBBLE_MGMT" "$HTTP01_PORT" "$TLSALPN_PORT" "$LOCAL_CA_PORT" \
    "$LEGO_CA_PORT"
if wants_dns; then
    require_free_ports "$DNS_PORT" "$DNS_PEBBLE_PORT" "$DNS_PEBBLE_MGMT" "$DNS_PEBBLE_HTTP" \
        "$DNS_PEBBLE_TLS"
    # The zone's NS, ns1.bench.test, is 127.0.0.1:53, which quire asks after
    # named (see above): it must be a server that is not there, not a
    # resolver that could forward the question off the machine.
    if dig @127.0.0.1 -p 53 +norecurse +time=1 +tries=1 "$DNS_ZONE" SOA >/dev/null 2>&1; then
        echo "something answers DNS on 127.0.0.1:53; the dns-01 runs need that port silent" \
             "(quire would ask it as a name server of $DNS_ZONE)" >&2
        exit 1
    fi
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/quire-bench-certify.XXXXXX")"
PPID_PEBBLE=""
LOCAL_CA_PID=""
DNS_PEBBLE_PID=""
NAMED_PID=""
cleanup() {
    [ -z "$PPID_PEBBLE" ] || stop_pid "$PPID_PEBBLE"
    [ -z "$LOCAL_CA_PID" ] || stop_pid "$LOCAL_CA_PID"
    [ -z "$DNS_PEBBLE_PID" ] || stop_pid "$DNS_PEBBLE_PID"
    [ -z "$NAMED_PID" ] || stop_pid "$NAMED_PID"
    remove_tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- quire
QUIRE=""
if wants quire || wants quire-local || wants lego-local || wants quire-dns01 ||
    wants quire-fallback; then
    QUIRE="$(quire_binary "$REPO")"
fi
if wants quire-fallback &&
    curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$DOWN_CA_PORT/" 2>/dev/null; then
    echo "something listens on 127.0.0.1:$DOWN_CA_PORT, where quire-fallback's first CA must be down; stop it" >&2
    exit 1
fi

# ---------------------------------------------------------------- pebble
# pebble_start NAME ACME MGMT HTTP TLS [PEBBLE-ARG...]: starts a Pebble with
# the settings above, config $TMP/NAME.json, log $TMP/NAME.log, listening on
# 127.0.0.1:ACME (management MGMT), validating http-01 on HTTP and
# tls-alpn-01 on TLS; its PID is then in $!.
pebble_start() {
    local name="$1" acme="$2" mgmt="$3" http="$4" tls="$5"
    shift 5
    cat >"$TMP/$name.json" <<EOF
{
  "pebble": {
    "listenAddress": "127.0.0.1:$acme",
    "managementListenAddress": "127.0.0.1:$mgmt",
    "certificate": "$TMP/pebble.pem",
    "privateKey": "$TMP/pebble.key",
    "httpPort": $http,
    "tlsPort": $tls,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false
  }
}
EOF
    PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
        pebble -config "$TMP/$name.json" "$@" >"$TMP/$name.log" 2>&1 &
}
# until_ready PID TRIES WHAT LOG PROBE...: runs PROBE every 0.1 s, at most
# TRIES times and while PID lives, until it succeeds; otherwise says that WHAT
# did not answer, shows LOG and exits.
until_ready() {
    local pid="$1" tries="$2" what="$3" log="$4"
    shift 4
    for _ in $(seq "$tries"); do
        if "$@"; then return 0; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "$what did not answer; its log:" >&2
    cat "$log" >&2
    exit 1
}
# pebble_ready NAME PID ACME MGMT: waits for that Pebble's directory, then
# saves its issuing chain (new keys every start) as $TMP/NAME-root.pem and
# $TMP/NAME-intermediate.pem, to check what the clients download.
pebble_ready() {
    local name="$1" pid="$2" url="https://127.0.0.1:$3/dir"
    until_ready "$pid" 200 "pebble on $url" "$TMP/$name.log" \
        curl -sf --max-time 2 --cacert "$HTTPS_CA" -o /dev/null "$url"
    curl -sf --max-time 5 --cacert "$HTTPS_CA" -o "$TMP/$name-root.pem" \
        "https://127.0.0.1:$4/roots/0"
    curl -sf --max-time 5 --cacert "$HTTPS_CA" -o "$TMP/$name-intermediate.pem" \
        "https://127.0.0.1:$4/intermediates/0"
}
if wants_pebble || wants_dns; then
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
fi
if wants_pebble; then
    pebble_start pebble "$PEBBLE_PORT" "$PEBBLE_MGMT" "$HTTP01_PORT" "$TLSALPN_PORT"
    PPID_PEBBLE=$!
    DIR_URL="https://127.0.0.1:$PEBBLE_PORT/dir"
    pebble_ready pebble "$PPID_PEBBLE" "$PEBBLE_PORT" "$PEBBLE_MGMT"
fi

# ---------------------------------------------------------------- named
# The zone's primary for dns-01 (see the header), with the dns-01 Pebble
# resolving through it. The TSIG secret exists only in the temp dir: in
# named/tsig.key (named.conf includes it; nsupdate -k reads it), in
# tsig.secret for quire (0600), and in lego's environment.
if wants_dns; then
    NAMED_DIR="$TMP/named"
    TSIG_SECRET_FILE="$TMP/tsig.secret"
    (
        umask 077
        mkdir -p "$NAMED_DIR"
        openssl rand -base64 32 >"$TSIG_SECRET_FILE"
    ) || { echo "making the TSIG secret failed" >&2; exit 1; }
    TSIG_SECRET="$(cat "$TSIG_SECRET_FILE")"
    # The key as named.conf includes it and as nsupdate -k reads it.
    (
        umask 077
        echo "key \"$TSIG_KEY\" { algorithm hmac-sha256; secret \"$TSIG_SECRET\"; };" \
            >"$NAMED_DIR/tsig.key"
    )
    cat >"$NAMED_DIR/named.conf" <<EOF
options {
  directory "$NAMED_DIR";
  pid-file "$NAMED_DIR/named.pid";
  session-keyfile "$NAMED_DIR/session.key";
  managed-keys-directory "$NAMED_DIR";
  listen-on port $DNS_PORT { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  allow-transfer { none; };
};
controls { };
include "$NAMED_DIR/tsig.key";
zone "$DNS_ZONE" {
  type primary;
  file "$NAMED_DIR/zone.db";
  update-policy { grant $TSIG_KEY zonesub TXT; };
};
EOF
    cat >"$NAMED_DIR/zone.db" <<EOF
\$TTL 60
@ IN SOA ns1.$DNS_ZONE. hostmaster.$DNS_ZONE. 1 60 60 600 60
@ IN NS ns1.$DNS_ZONE.
ns1 IN A 127.0.0.1
EOF
    # -g: foreground, logging to stderr. Without -u it keeps the user it was
    # started as, root included: it must write its journal in NAMED_DIR.
    named -g -c "$NAMED_DIR/named.conf" >"$TMP/named.log" 2>&1 &
    NAMED_PID=$!
    named_answers() {
        [ -n "$(dig @127.0.0.1 -p "$DNS_PORT" +short +norecurse +time=1 +tries=1 \
                "$DNS_ZONE" SOA 2>/dev/null)" ]
    }
    until_ready "$NAMED_PID" 100 "named for $DNS_ZONE on 127.0.0.1:$DNS_PORT" \
        "$TMP/named.log" named_answers
    # A second Pebble, resolving through named only (see the header).
    pebble_start pebble-dns "$DNS_PEBBLE_PORT" "$DNS_PEBBLE_MGMT" "$DNS_PEBBLE_HTTP" \
        "$DNS_PEBBLE_TLS" -dnsserver "127.0.0.1:$DNS_PORT"
    DNS_PEBBLE_PID=$!
    DNS_DIR_URL="https://127.0.0.1:$DNS_PEBBLE_PORT/dir"
    pebble_ready pebble-dns "$DNS_PEBBLE_PID" "$DNS_PEBBLE_PORT" "$DNS_PEBBLE_MGMT"
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
    local_ca_answers() {
        [ -s "$LOCAL_ROOT" ] &&
            curl -sf --max-time 2 --cacert "$LOCAL_ROOT" -o /dev/null "$LOCAL_DIR_URL"
    }
    until_ready "$LOCAL_CA_PID" 100 "quire local-ca on $LOCAL_DIR_URL" "$TMP/local-ca.log" \
        local_ca_answers
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
quire_dns01_config() { # quire_dns01_config DIR -> DIR/quire.toml, dns-01 through named
    local names
    names="$(printf '"%s", ' "${DNS_NAMES[@]}")"
    cat >"$1/quire.toml" <<EOF
[tls]
mode = "acme"
directory_url = $(toml_str "$DNS_DIR_URL")
challenge = "dns-01"
[tls.dns]
server = "127.0.0.1:$DNS_PORT"
zone = "$DNS_ZONE"
tsig_key = "$TSIG_KEY"
tsig_algorithm = "hmac-sha256"
tsig_secret_file = $(toml_str "$TSIG_SECRET_FILE")
[domains]
names = [${names%, }]
[listen]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
$(example_paths "$REPO" "$1/data")
EOF
}
quire_fallback_config() { # quire_fallback_config DIR -> DIR/quire.toml, two CAs, the first down
    cat >"$1/quire.toml" <<EOF
[tls]
mode = "acme"
[[tls.issuers]]
directory_url = "https://127.0.0.1:$DOWN_CA_PORT/dir"
[[tls.issuers]]
directory_url = $(toml_str "$DIR_URL")
roots = $(toml_str "$HTTPS_CA")
[domains]
names = ["$DOMAIN"]
[listen]
http = "127.0.0.1:$HTTP01_PORT"
https = "127.0.0.1:0"
$(example_paths "$REPO" "$1/data")
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
        quire-dns01)
            quire_dns01_config "$1"
            ENVS=(QUIRE_ACME_ROOTS="$HTTPS_CA" RUST_LOG="${RUST_LOG:-warn}")
            CMD=("$QUIRE" cert renew --dry-run --config "$1/quire.toml") ;;
        quire-fallback)
            quire_fallback_config "$1"
            ENVS=(RUST_LOG="${RUST_LOG:-warn}")
            CMD=("$QUIRE" cert renew --config "$1/quire.toml") ;;
        lego-dns01)
            # lego's best settings (see the header).
            ENVS=(LEGO_CA_CERTIFICATES="$HTTPS_CA"
                  RFC2136_NAMESERVER="127.0.0.1:$DNS_PORT"
                  RFC2136_TSIG_KEY="$TSIG_KEY" RFC2136_TSIG_SECRET="$TSIG_SECRET"
                  RFC2136_TSIG_ALGORITHM=hmac-sha256
                  RFC2136_PROPAGATION_TIMEOUT=10 RFC2136_POLLING_INTERVAL=0
                  RFC2136_SEQUENCE_INTERVAL=0)
            CMD=(lego --server "$DNS_DIR_URL" --accept-tos --email bench@example.com
                 --key-type ec256 --domains "${DNS_NAMES[0]}" --domains "${DNS_NAMES[1]}"
                 --dns rfc2136 --dns.resolvers "127.0.0.1:$DNS_PORT" --dns.disable-cp
                 --path "$dir" run) ;;
    esac
}
issued_cert() { # issued_cert CLIENT DIR -> path of the downloaded chain, or ""
    case "$1" in
        certbot) echo "$2/state/config/live/$DOMAIN/fullchain.pem" ;;
        lego|lego-local) echo "$2/state/certificates/$DOMAIN.crt" ;;
        lego-dns01) echo "$2/state/certificates/${DNS_NAMES[0]}.crt" ;;
        quire-fallback) echo "$2/data/certs/$DOMAIN/fullchain.pem" ;;
        *) echo "" ;;
    esac
}
issued_by() { # issued_by CLIENT CERT: verifies CERT (lego's includes its chain) against the CA
    case "$1" in
        lego-local) openssl verify -CAfile "$LOCAL_ROOT" -untrusted "$2" "$2" ;;
        lego-dns01) openssl verify -CAfile "$TMP/pebble-dns-root.pem" \
               -untrusted "$TMP/pebble-dns-intermediate.pem" "$2" ;;
        *) openssl verify -CAfile "$TMP/pebble-root.pem" \
               -untrusted "$TMP/pebble-intermediate.pem" "$2" ;;
    esac
}
certified_names() { # certified_names CLIENT -> the names its certificate must carry, one a line
    case "$1" in
        *-dns01) printf '%s\n' "${DNS_NAMES[@]}" ;;
        *) echo "$DOMAIN" ;;
    esac
}
names_in() { # names_in CERT NAME...: whether CERT's subjectAltName lists every NAME
    local sans name
    sans="$(openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null)" || return 1
    shift
    for name in "$@"; do
        case "$sans" in *"DNS:$name"*) ;; *) return 1 ;; esac
    done
}
DNS_OWNERS=()   # where the dns-01 clients put their TXT records
mapfile -t DNS_OWNERS < <(printf '_acme-challenge.%s\n' "${DNS_NAMES[@]#\*.}" | sort -u)
leftover_txt() { # leftover_txt: the _acme-challenge TXT records named still has, one a line
    local owner
    for owner in "${DNS_OWNERS[@]}"; do
        dig @127.0.0.1 -p "$DNS_PORT" +short +norecurse +time=2 +tries=1 "$owner" TXT |
            sed "s/^/$owner TXT /"
    done
}
clear_txt() { # clear_txt: deletes every _acme-challenge TXT record, so each run is judged alone
    local owner
    {
        echo "server 127.0.0.1 $DNS_PORT"
        echo "zone $DNS_ZONE"
        for owner in "${DNS_OWNERS[@]}"; do echo "update delete $owner TXT"; done
        echo "send"
    } | nsupdate -k "$NAMED_DIR/tsig.key"
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
            *-dns01)
                echo "--- dns-01 pebble log (last 20 lines):" >&2
                grep -av 'calling handler' "$TMP/pebble-dns.log" | tail -n 20 >&2
                echo "--- named log (last 20 lines):" >&2
                tail -n 20 "$TMP/named.log" >&2 ;;
            *)
                echo "--- pebble log (last 20 lines):" >&2
                grep -av 'calling handler' "$TMP/pebble.log" | tail -n 20 >&2 ;;
        esac
        exit 1
    fi
    local names=() said
    mapfile -t names < <(certified_names "$CLIENT")
    cert="$(issued_cert "$CLIENT" "$dir")"
    if [ -n "$cert" ]; then
        if [ ! -s "$cert" ] || ! issued_by "$CLIENT" "$cert" >/dev/null 2>&1 ||
            ! names_in "$cert" "${names[@]}"; then
            echo "$CLIENT run $round exited 0 but $cert is not a certificate for ${names[*]}" \
                 "from its CA" >&2
            exit 1
        fi
    else
        # quire's dry run keeps no certificate; it says what the CA issued.
        said="$(printf '%s, ' "${names[@]}")"
        said="issued a certificate for ${said%, } in"
        if ! grep -qF "$said" "$dir/stdout"; then
            echo "$CLIENT run $round exited 0 but its output lacks \`$said\`:" >&2
            cat "$dir/stdout" >&2
            exit 1
        fi
    fi
    case "$CLIENT" in
        quire-fallback)
            # From the second CA, after the first failed.
            if ! grep -qF "after https://127.0.0.1:$DOWN_CA_PORT/dir failed" "$dir/stdout"; then
                echo "$CLIENT run $round: the certificate did not come by fallback:" >&2
                cat "$dir/stdout" >&2
                exit 1
            fi ;;
        *-dns01)
            # Each client must delete the TXT records it added.
            local left
            left="$(leftover_txt)"
            if [ -n "$left" ]; then
                echo "warning: $CLIENT run $round left in zone $DNS_ZONE:" \
                     "$(printf '%s' "$left" | tr '\n' ';')" >&2
                echo "$CLIENT $round" >>"$TMP/leftovers"
                clear_txt
            fi ;;
    esac
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
! wants_dns || VERSIONS+=("$(peer_version named bind9)")
echo
machine_banner "${VERSIONS[@]}"
python3 - "$TMP" "$N" "$(nproc)" "${DNS_NAMES[*]}" "${CLIENTS[@]}" <<'EOF'
import os, statistics, sys
tmp, n, cpus, dns_names, *clients = sys.argv[1:]
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
    "quire-dns01": "quire (dns-01)",
    "quire-fallback": "quire (1st CA down)",
    "lego-dns01": "lego (dns-01)",
}
# Each client is compared with quire against the same CA.
BASE = {"certbot": "quire", "lego": "quire", "quire": "quire",
        "quire-local": "quire-local", "lego-local": "quire-local",
        "quire-dns01": "quire-dns01", "lego-dns01": "quire-dns01",
        "quire-fallback": "quire"}
med = {c: statistics.median(v) for c, v in times.items()}
dns = [c for c in clients if c.endswith("-dns01")]
http = [c for c in clients if c not in dns]
print(f"ACME certification (new account, order, validation, finalize, download), {n} per "
      f"client, fresh state each, rounds alternating; nproc {cpus}")
if http:
    print("  `localhost` by http-01: " + ", ".join(LABEL[c] for c in http))
if dns:
    print(f"  {' and '.join(f'`{d}`' for d in dns_names.split())} by dns-01 through BIND "
          f"(RFC 2136, TSIG), against a second Pebble: " + ", ".join(LABEL[c] for c in dns))
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
print("x quire, same CA: this client's median / quire's median against the same CA and challenge\n"
      "  (Pebble: certbot/quire, lego/quire; local CA: lego/quire; dns-01: lego/quire); '-' when\n"
      "  that quire did not run.")
if "quire-fallback" in med:
    print("quire (1st CA down): [[tls.issuers]] lists a CA where nothing listens, then the Pebble;\n"
          "  a real renewal (stores the certificate, writes a backup), compared with quire's dry run.")
if "lego" in med and "lego-local" in med:
    print(f"lego: median {med['lego-local']:.0f} ms against quire's local CA, "
          f"{med['lego']:.0f} ms against Pebble")
print("Wall clock of the whole command, process start to exit. certbot sleeps 1 s before its first\n"
      "  authorization poll and 1 s before its first order poll; lego polls the order every 500 ms and\n"
      "  waits 5 s when its challenge POST still answers 'pending' (no Retry-After from Pebble), so its\n"
      "  times cluster near 0.1 s, 0.6 s and 5.6-6.1 s and a median of few runs is fragile; quire's local\n"
      "  CA validates during the challenge POST and answers with the outcome, sparing lego that wait.")
if dns:
    print("dns-01: lego with --dns.disable-cp and 0 s polling and sequence intervals (its best), quire\n"
          "  with its defaults; lego solves the names one after the other (each may pay the 5 s wait),\n"
          "  quire publishes both records in one update and waits until named answers with them.")
    left = os.path.join(tmp, "leftovers")
    if os.path.exists(left):
        for line in open(left):
            c, r = line.split()
            print(f"warning: {LABEL[c]} run {r} left _acme-challenge TXT records in the zone")
    else:
        print("No _acme-challenge TXT record was left in the zone after any dns-01 run.")

def summary(*cells):
    """One line of bench/all.sh's table: measurement, quire, nginx, other peer, ratio."""
    with open(os.path.join(tmp, "summary.tsv"), "a") as f:
        f.write("\t".join(cells) + "\n")

for base, peer, what in (("quire", "certbot", "Pebble"), ("quire", "lego", "Pebble"),
                         ("quire-local", "lego-local", "quire's local CA"),
                         ("quire-dns01", "lego-dns01", "Pebble by dns-01 (BIND, RFC 2136), a name and a wildcard")):
    if base in med and peer in med:
        summary(f"certification against {what}, median of {n} (new account to certificate)",
                f"{med[base]:,.0f} ms", "-", f"{peer.split('-')[0]} {med[peer]:,.0f} ms",
                f"{peer.split('-')[0]}/quire {med[peer] / med[base]:.1f}x the time")
if "quire" in med and "quire-fallback" in med:
    summary(f"certification when the first of two CAs is down (connection refused), median of {n}",
            f"{med['quire-fallback']:,.0f} ms", "-", f"quire, one CA {med['quire']:,.0f} ms",
            f"fallback costs {med['quire-fallback'] - med['quire']:+,.0f} ms")
EOF
publish_summary "$TMP/summary.tsv"
