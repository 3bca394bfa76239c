#!/usr/bin/env bash
# Cluster benchmark: three quire nodes sharing one PostgreSQL on loopback
# (127.0.0.1, 127.0.0.2, 127.0.0.3) against a single node, in the same run.
#
#   bench/cluster.sh [PATH]      PATH like /posts/hello/
#                                (default: /posts/markdown-tour/)
#
# Two measurements:
#   serve    the article over HTTPS (wrk -t2 -c64 --latency, HTTP/1.1
#            keep-alive), alternating cluster node 1 and the single node,
#            ROUNDS times each: req/s and p99. Both serve the same manual
#            certificate, so the only difference is the cluster (its pool,
#            LISTEN connection, heartbeat and registry view running beside
#            the requests): the request path should not see it.
#   renew    RENEWALS times: `quire cert renew` on node 1 (local mode, through
#            its running server), then the time until all three nodes serve
#            the new serial, polled with openssl s_client every POLL seconds:
#            median and max. Needs certificate sharing through PostgreSQL.
#
#   flush    one flush of 100,000 buffered views into the cluster's shared
#            tables vs into sled and memory: `cargo bench --bench stats --
#            flush/100k` with QUIRE_BENCH_POSTGRES set to this run's server
#            (its own database, emptied before each flush).
#
# Environment:
#   DURATION=10s ROUNDS=2 THREADS=2 CONNECTIONS=64   the serve runs
#   RENEWALS=5 POLL=0.05                             the renew runs
#   PHASES="serve renew flush"                       which to run
#   QUIRE_BIN=path    use this binary instead of running cargo build
#   KEEP=1            keep the temp dir (logs, outputs) and print its path
#
# PostgreSQL (Debian's package, /usr/lib/postgresql/*/bin) runs from a fresh
# initdb in the temp dir on 127.0.0.1:18432, as the postgres user when run as
# root. Nodes listen on 127.0.0.N:18443 (https), :18080 (http), :19100
# (metrics), :18444 (local CA); the single node on 127.0.0.1:18543, :18180,
# :19200. Not part of the test suite.
set -euo pipefail

DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
ROUNDS="${ROUNDS:-2}"
RENEWALS="${RENEWALS:-5}"
POLL="${POLL:-0.05}"
PHASES="${PHASES:-serve renew flush}"
HOST=blog.test
PGPORT=18432
HTTPS=18443
HTTP=18080
METRICS=19100
LOCAL_CA=18444
SOLO_HTTPS=18543
SOLO_HTTP=18180
SOLO_METRICS=19200
NODES=(1 2 3)

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
need curl curl
need openssl openssl
need wrk wrk
need python3 python3
# Debian keeps initdb and postgres off PATH.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    [ "$(id -u)" -eq 0 ] || { echo "PostgreSQL missing and not root: apt-get install postgresql" >&2; exit 1; }
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"

require_free_ports "$PGPORT" "$SOLO_HTTPS" "$SOLO_HTTP" "$SOLO_METRICS"
for n in "${NODES[@]}"; do
    for p in "$HTTPS" "$HTTP" "$METRICS" "$LOCAL_CA"; do
        if (exec 3<>"/dev/tcp/127.0.0.$n/$p") 2>/dev/null; then
            echo "127.0.0.$n:$p is already in use; stop whatever listens there" >&2
            exit 1
        fi
    done
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/quire-bench-cluster.XXXXXX")"
PGPID=""
NODE_PIDS=()
cleanup() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid"; done
    NODE_PIDS=()
    # SIGINT: PostgreSQL's fast shutdown (SIGTERM would wait for clients), to
    # the postmaster itself: $PGPID may be runuser, which, started in the
    # background, ignores SIGINT.
    if [ -n "$PGPID" ] && kill -0 "$PGPID" 2>/dev/null; then
        kill -INT "$(head -n1 "$TMP/pg/postmaster.pid" 2>/dev/null || echo "$PGPID")" 2>/dev/null || true
        wait "$PGPID" 2>/dev/null || true
    fi
    remove_tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- PostgreSQL
# postgres refuses to run as root: as root, the postgres user runs it.
AS_PG=()
if [ "$(id -u)" -eq 0 ]; then
    AS_PG=(runuser -u postgres --)
    chown postgres "$TMP"
fi
"${AS_PG[@]}" "$PGBIN/initdb" -D "$TMP/pg" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --locale=C --no-instructions >/dev/null
PASSWORD="$(openssl rand -hex 12)"
"${AS_PG[@]}" "$PGBIN/postgres" -D "$TMP/pg" -p "$PGPORT" -k "$TMP" \
    -c listen_addresses=127.0.0.1 >"$TMP/postgres.log" 2>&1 &
PGPID=$!
psql_admin() {
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$TMP" -p "$PGPORT" -U postgres "$@"
}
for _ in $(seq 100); do
    psql_admin -d postgres -c 'SELECT 1' >/dev/null 2>&1 && break
    kill -0 "$PGPID" 2>/dev/null || { cat "$TMP/postgres.log" >&2; exit 1; }
    sleep 0.1
done
# The least-rights setup of deploy/README.md, "Running a cluster".
psql_admin -d postgres <<EOF
CREATE ROLE quire LOGIN PASSWORD '$PASSWORD';
CREATE DATABASE serve;
CREATE DATABASE renew;
CREATE DATABASE flush;
EOF
for db in serve renew flush; do
    psql_admin -d "$db" <<EOF
REVOKE ALL ON DATABASE $db FROM PUBLIC;
GRANT CONNECT ON DATABASE $db TO quire;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
CREATE SCHEMA quire AUTHORIZATION quire;
ALTER ROLE quire IN DATABASE $db SET search_path = quire;
EOF
done
pg_url() { echo "postgres://quire:$PASSWORD@127.0.0.1:$PGPORT/$1"; }

# ---------------------------------------------------------------- certificate
(
    cd "$TMP"
    umask 077
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout privkey.pem -out fullchain.pem -days 2 -subj "/CN=$HOST" \
        -addext "subjectAltName=DNS:$HOST" 2>/dev/null
)
QUIRE="$(quire_binary "$REPO")"

# node_config NAME DIR ADDR HTTPS HTTP METRICS TLS-SECTION [CLUSTER-DB]
node_config() {
    local name="$1" dir="$2" addr="$3" cluster=""
    mkdir -p "$dir/data"
    if [ -n "${8:-}" ]; then
        cluster="[cluster]
postgres = $(toml_str "$(pg_url "$8")")
node = \"$name\""
    fi
    cat >"$dir/quire.toml" <<EOF
[site]
title = "Bench"
base_url = "https://$HOST/"
$(example_paths "$REPO" "$dir/data")
[listen]
http = "$addr:$5"
https = "$addr:$4"
metrics = "$addr:$6"
$7
$cluster
EOF
}
MANUAL="[domains]
names = [\"$HOST\"]
[tls]
mode = \"manual\"
cert_file = $(toml_str "$TMP/fullchain.pem")
key_file = $(toml_str "$TMP/privkey.pem")"

start_node() { # start_node DIR ADDR HTTPS: starts quire, waits for HTTPS
    "$QUIRE" serve --config "$1/quire.toml" >"$1/quire.log" 2>&1 &
    NODE_PIDS+=("$!")
    local pid=$!
    for _ in $(seq 300); do
        if curl -skf -o /dev/null "https://$2:$3/"; then return 0; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "quire in $1 did not serve on https://$2:$3/; its log:" >&2
    cat "$1/quire.log" >&2
    exit 1
}
stop_nodes() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid"; done
    NODE_PIDS=()
}
cluster_nodes() { # cluster_nodes DIR: nodes heard from, per `quire cluster status`
    "$QUIRE" cluster status --config "$1/quire.toml" |
        sed -nE 's/^cluster on .*: [0-9]+ nodes, ([0-9]+) heard from.*/\1/p'
}

ARTICLE="${1:-/posts/markdown-tour/}"
case "$ARTICLE" in
    /*) ;;
    *) echo "article path must start with /: $ARTICLE" >&2; exit 1 ;;
esac

# ---------------------------------------------------------------- serve
if [[ " $PHASES " == *" serve "* ]]; then
    for n in "${NODES[@]}"; do
        node_config "node$n" "$TMP/serve$n" "127.0.0.$n" "$HTTPS" "$HTTP" "$METRICS" \
            "$MANUAL" serve
        start_node "$TMP/serve$n" "127.0.0.$n" "$HTTPS"
    done
    node_config solo "$TMP/solo" 127.0.0.1 "$SOLO_HTTPS" "$SOLO_HTTP" "$SOLO_METRICS" "$MANUAL"
    start_node "$TMP/solo" 127.0.0.1 "$SOLO_HTTPS"
    for _ in $(seq 100); do
        [ "$(cluster_nodes "$TMP/serve1")" = 3 ] && break
        sleep 0.2
    done
    [ "$(cluster_nodes "$TMP/serve1")" = 3 ] || {
        echo "the three nodes did not all join the cluster:" >&2
        "$QUIRE" cluster status --config "$TMP/serve1/quire.toml" >&2
        exit 1
    }
    for target in "127.0.0.1:$HTTPS" "127.0.0.1:$SOLO_HTTPS"; do
        curl -skf -o /dev/null -H "Host: $HOST" "https://$target$ARTICLE" || {
            echo "GET https://$target$ARTICLE failed" >&2; exit 1; }
    done
    for r in $(seq "$ROUNDS"); do
        for who in cluster solo; do
            case "$who" in
                cluster) port=$HTTPS ;;
                *) port=$SOLO_HTTPS ;;
            esac
            echo "serve $who round $r: https://127.0.0.1:$port$ARTICLE" >&2
            wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Host: $HOST" \
                "https://127.0.0.1:$port$ARTICLE" >"$TMP/serve-$who-$r.txt" 2>&1 || {
                cat "$TMP/serve-$who-$r.txt" >&2; exit 1; }
        done
    done
    engine_up="$(curl -sf "http://127.0.0.1:$METRICS/metrics" |
        sed -nE 's/^quire_cluster_engine_up ([0-9]+).*/\1/p')"
    [ "$engine_up" = 1 ] || {
        echo "node 1 lost the engine during the run (quire_cluster_engine_up $engine_up)" >&2
        exit 1
    }
    stop_nodes
fi

# ---------------------------------------------------------------- renew
serial() { # serial ADDR: the serial of the certificate served at ADDR:HTTPS
    timeout 5 openssl s_client -connect "$1:$HTTPS" -servername localhost </dev/null 2>/dev/null |
        openssl x509 -noout -serial 2>/dev/null | cut -d= -f2
}
if [[ " $PHASES " == *" renew "* ]]; then
    for n in "${NODES[@]}"; do
        node_config "node$n" "$TMP/renew$n" "127.0.0.$n" "$HTTPS" "$HTTP" "$METRICS" \
            "local_ca = \"127.0.0.$n:$LOCAL_CA\"
[tls]
mode = \"local\"" renew
        start_node "$TMP/renew$n" "127.0.0.$n" "$HTTPS"
    done
    : >"$TMP/renewals.txt"
    for i in $(seq "$RENEWALS"); do
        before="$(serial 127.0.0.1)"
        start="$(date +%s.%N)"
        "$QUIRE" cert renew --config "$TMP/renew1/quire.toml" >"$TMP/renew-$i.txt" 2>&1 || {
            cat "$TMP/renew-$i.txt" >&2; exit 1; }
        renewed="$(date +%s.%N)"
        new=""
        deadline=$(( $(date +%s) + 30 ))
        while :; do
            s1="$(serial 127.0.0.1)"; s2="$(serial 127.0.0.2)"; s3="$(serial 127.0.0.3)"
            if [ -n "$s1" ] && [ "$s1" != "$before" ] && [ "$s1" = "$s2" ] && [ "$s2" = "$s3" ]; then
                new="$s1"
                break
            fi
            if [ "$(date +%s)" -ge "$deadline" ]; then
                echo "renewal $i: the nodes did not all serve one new serial within 30 s" \
                     "(before $before; now $s1 $s2 $s3): is certificate sharing through" \
                     "PostgreSQL in this build?" >&2
                exit 1
            fi
            sleep "$POLL"
        done
        everywhere="$(date +%s.%N)"
        echo "$start $renewed $everywhere" >>"$TMP/renewals.txt"
        echo "renewal $i: serial $before -> $new" >&2
    done
    stop_nodes
fi

# ---------------------------------------------------------------- flush
if [[ " $PHASES " == *" flush "* ]]; then
    (cd "$REPO" && QUIRE_BENCH_POSTGRES="$(pg_url flush)" \
        cargo bench --locked --bench stats -- flush/100k 2>&1) >"$TMP/flush.txt" || {
        cat "$TMP/flush.txt" >&2; exit 1; }
fi

# ---------------------------------------------------------------- report
echo
machine_banner "$(quire_version "$QUIRE")" "$("$PGBIN/postgres" --version)" "$(peer_version wrk)"
python3 - "$TMP" "$ROUNDS" "$ARTICLE" "$PHASES" "$(nproc)" "$THREADS" "$CONNECTIONS" \
    "$DURATION" "$POLL" "$("$PGBIN/postgres" --version)" <<'EOF'
import os, re, statistics, sys
tmp, rounds, article, phases, cpus, t, c, d, poll, pg = sys.argv[1:]
rounds = int(rounds)
UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
print("nodes on 127.0.0.1-3, one PostgreSQL on 127.0.0.1")
if "serve" in phases.split():
    print(f"\nHTTPS {article}, wrk -t{t} -c{c} -d{d} --latency (HTTP/1.1 keep-alive), "
          f"{rounds} round(s) alternating")
    print(f"{'server':<22}{'round':>6}{'req/s':>10}{'p99 ms':>9}{'errors':>8}")
    avg = {}
    for who, label in (("cluster", "cluster node 1 of 3"), ("solo", "single node")):
        rps, p99 = [], []
        for r in range(1, rounds + 1):
            text = open(os.path.join(tmp, f"serve-{who}-{r}.txt")).read()
            rate = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M)
            lat = re.search(r"^\s*99%\s+([0-9.]+)(us|ms|s|m)\s*$", text, re.M)
            if not rate or not lat:
                sys.exit(f"cannot parse wrk output:\n{text}")
            bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
            sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
            errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)
            rps.append(float(rate.group(1)))
            p99.append(float(lat.group(1)) * UNIT[lat.group(2)])
            print(f"{label:<22}{r:>6}{rps[-1]:>10.0f}{p99[-1]:>9.2f}{errors:>8}")
        avg[who] = (sum(rps) / rounds, sum(p99) / rounds)
    print(f"mean: cluster {avg['cluster'][0]:.0f} req/s, p99 {avg['cluster'][1]:.2f} ms; "
          f"single {avg['solo'][0]:.0f} req/s, p99 {avg['solo'][1]:.2f} ms; "
          f"cluster/single {avg['cluster'][0] / avg['solo'][0]:.2f}")
if "renew" in phases.split():
    rows = [tuple(map(float, line.split())) for line in open(os.path.join(tmp, "renewals.txt"))]
    command = [b - a for a, b, _ in rows]
    spread = [e - b for _, b, e in rows]
    total = [e - a for a, _, e in rows]
    ms = lambda xs: f"median {statistics.median(xs) * 1000:.0f} ms, max {max(xs) * 1000:.0f} ms"
    print(f"\n{len(rows)} renewals with `quire cert renew` on node 1 (local mode), "
          f"serials polled every {poll} s with openssl s_client:")
    print(f"  the command (order, store, swap on node 1): {ms(command)}")
    print(f"  from its return to all three nodes serving the new serial: {ms(spread)}")
    print(f"  from the command's start to all three: {ms(total)}")
if "flush" in phases.split():
    text = open(os.path.join(tmp, "flush.txt")).read()
    found = re.findall(r"^(flush/100k_views/\S+)\s+time:\s+\[\S+ \S+ (\S+) (\S+)", text, re.M)
    if not found:
        sys.exit(f"cannot parse the criterion output:\n{text}")
    print("\none flush of 100,000 views (criterion, median of the estimate):")
    for name, value, unit in found:
        print(f"  {name.split('/')[-1]:<10} {value} {unit}")
EOF
