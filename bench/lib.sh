# shellcheck shell=bash
# Shared by the bench scripts: sourced, not run.

# need CMD PACKAGE: installs the Debian package when the command is missing.
need() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "installing $2 ..." >&2
        if [ "$(id -u)" -ne 0 ]; then
            echo "$1 missing and not root: apt-get install $2" >&2; exit 1
        fi
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2
    fi
}

# release_binary REPO VAR PATH [CARGO-ARG...]: prints the binary to use: the
# one $VAR names if set, else REPO/PATH after `cargo build --release` of REPO
# (with CARGO-ARGs).
release_binary() {
    local repo="$1" var="$2" path="$3" bin
    shift 3
    if [ -n "${!var:-}" ]; then
        bin="${!var}"
    else
        if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
            # shellcheck disable=SC1091
            . "$HOME/.cargo/env"
        fi
        echo "building $path (cargo build --release $*) ..." >&2
        (cd "$repo" && cargo build --release --quiet "$@") >&2
        bin="$repo/$path"
    fi
    [ -x "$bin" ] || { echo "binary not found: $bin (set $var, or check the build)" >&2; exit 1; }
    printf '%s\n' "$bin"
}

# quire_binary REPO: the quire binary ($QUIRE_BIN, or a release build).
quire_binary() { release_binary "$1" QUIRE_BIN target/release/quire; }

# tls_rate_binary REPO: the open-loop load generator bench/tls_rate.rs
# ($TLS_RATE_BIN, or a release build of the example).
tls_rate_binary() {
    release_binary "$1" TLS_RATE_BIN target/release/examples/tls-rate --example tls-rate
}

# toml_str TEXT: TEXT as a TOML basic string.
toml_str() {
    local s="${1//\\/\\\\}"
    printf '"%s"' "${s//\"/\\\"}"
}

# nginx_config DIR SERVER_BLOCK: writes DIR/nginx.conf for an nginx that keeps
# every file in DIR (pid, logs, temp) and serves SERVER_BLOCK. Both benchmarks
# use it, so nginx is tuned the same way in each.
nginx_config() {
    local dir="$1" server="$2" user_line=""
    mkdir -p "$dir/logs" "$dir/tmp" "$dir/html"
    # Workers drop to an unprivileged user when started as root; keep them as
    # the current user so they can read the temp dir (mktemp makes it 0700).
    if [ "$(id -u)" -eq 0 ]; then
        user_line="user $(id -un) $(id -gn);"
    fi
    cat >"$dir/nginx.conf" <<EOF
$user_line
worker_processes auto;
daemon off;
pid $dir/nginx.pid;
lock_file $dir/nginx.lock;
error_log $dir/logs/error.log warn;

events {
    worker_connections 4096;
}

http {
    types {
        text/html html;
    }
    default_type text/html;
    charset utf-8;
    access_log off;
    # As an operator who cares would: the kernel copies files to the socket
    # (sendfile; over TLS nginx reads and encrypts them itself), headers and
    # the start of the body leave in full packets (tcp_nopush), the last
    # packet leaves at once (tcp_nodelay), and open file descriptors and
    # stat() results are cached.
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    open_file_cache_errors on;
    server_tokens off;
    # The default (1000) ends each keep-alive connection after 1000 requests;
    # quire has no such cap, and h2load does not reconnect after the GOAWAY.
    keepalive_requests 1000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;

$server
}
EOF
}

# nginx_tuned PID [EXTRA]: the line a report prints about the tuning above,
# with the worker count of the running nginx (the master PID's children) and
# EXTRA (the server block's own settings) appended.
nginx_tuned() {
    local workers
    workers="$(ps -o pid= --ppid "$1" | wc -l)"
    echo "nginx tuned: sendfile, tcp_nopush, tcp_nodelay, access log off," \
         "$workers workers (worker_processes auto, $(nproc) cores), open_file_cache," \
         "keepalive_requests 1000000${2:+, $2}"
}

# caddy_config DIR SITE_BLOCK [GLOBAL]: writes DIR/Caddyfile for a Caddy that
# serves SITE_BLOCK with the admin endpoint, automatic HTTPS and the access
# log off (its own log: errors only, to DIR/caddy.log), HTTP/1.1 and HTTP/2
# (no HTTP/3 listener: quire and nginx have none); GLOBAL is added to the
# global options. Start it with caddy_start so it keeps its files in DIR too.
caddy_config() {
    local dir="$1" site="$2" global="${3:-}"
    mkdir -p "$dir"
    cat >"$dir/Caddyfile" <<EOF
{
	admin off
	auto_https off
	log {
		output file $dir/caddy.log
		level ERROR
	}
	servers {
		protocols h1 h2
	}
$global
}

$site
EOF
    caddy validate --config "$dir/Caddyfile" --adapter caddyfile >"$dir/validate.log" 2>&1 || {
        cat "$dir/validate.log" >&2; echo "Caddy refused $dir/Caddyfile" >&2; return 1; }
}

# caddy_start DIR: starts Caddy in the background on DIR/Caddyfile, its data
# and autosaved config under DIR (XDG dirs), output in DIR/caddy.out; its PID
# is then in $!.
caddy_start() {
    XDG_DATA_HOME="$1/xdg-data" XDG_CONFIG_HOME="$1/xdg-config" \
        caddy run --config "$1/Caddyfile" --adapter caddyfile >"$1/caddy.out" 2>&1 &
}

# caddy_tuned: the line a report prints about Caddy's settings.
caddy_tuned() {
    echo "Caddy as configured: admin off, automatic HTTPS off, no access log," \
         "file_server, HTTP/1.1 and HTTP/2, Go's default GOMAXPROCS (= $(nproc) cores)"
}

# peer_version COMMAND [PACKAGE]: "COMMAND VERSION", the version of the Debian
# package PACKAGE (default COMMAND) that provides it; "?" when not installed.
peer_version() {
    local v
    v="$(dpkg-query -W -f '${Version}' "${2:-$1}" 2>/dev/null || true)"
    echo "$1 ${v:-?}"
}

# quire_version BIN: "quire VERSION" as BIN reports it.
quire_version() {
    local v
    v="$("$1" --version 2>/dev/null | head -n1 || true)"
    echo "${v:-quire ?}"
}

# machine_banner [VERSION...]: the machine the figures come from (CPU model,
# core count, kernel) and the versions of the programs compared (each
# VERSION a "name version" string, as peer_version prints); every report
# prints it with its results.
machine_banner() {
    local cpu versions
    cpu="$(LC_ALL=C lscpu 2>/dev/null | sed -nE 's/^Model name:[[:space:]]*//p' | head -n1)"
    echo "machine: ${cpu:-unknown CPU}, $(nproc) cores, kernel $(uname -r)"
    if [ "$#" -gt 0 ]; then
        versions="$(printf '%s, ' "$@")"
        echo "versions: ${versions%, }"
    fi
}

# publish_summary FILE: appends FILE's lines (measurement, quire, nginx,
# other peer, ratio: tab-separated, "-" for none) to $SUMMARY_FILE when that
# is set, for bench/all.sh's table.
publish_summary() {
    if [ -n "${SUMMARY_FILE:-}" ] && [ -s "$1" ]; then
        cat "$1" >>"$SUMMARY_FILE"
    fi
}

# require_free_ports PORT...: exits with a message if 127.0.0.1:PORT is taken.
require_free_ports() {
    local p
    for p in "$@"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "127.0.0.1:$p is already in use; stop whatever listens there" >&2
            exit 1
        fi
    done
}

# wait_up PID LOG URL [CURL-ARGS...]: waits up to 10 s for URL to answer
# (curl with CURL-ARGS); if it does not, or PID exits first, prints LOG and
# exits.
wait_up() {
    local pid="$1" log="$2" url="$3"
    shift 3
    for _ in $(seq 100); do
        if curl -sf -o /dev/null "$@" "$url"; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "$url did not answer; $log says:" >&2
    cat "$log" >&2
    exit 1
}

# stop_pid PID: TERM, wait up to 5 s, then KILL; reaps it.
stop_pid() {
    local pid="$1"
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# remove_tmp: at exit, removes $TMP, or keeps it and says where with KEEP=1.
remove_tmp() {
    if [ "${KEEP:-0}" = 1 ]; then
        echo "kept: $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}

# example_paths REPO DATA: the [paths] section for REPO's example content,
# with data kept in DATA.
example_paths() {
    cat <<EOF
[paths]
content = $(toml_str "$1/content")
static = $(toml_str "$1/static")
templates = $(toml_str "$1/templates")
data = $(toml_str "$2")
EOF
}

# plain_quire_config FILE REPO PORT DATA [EXTRA]: writes a config serving REPO's
# example content over plain HTTP (mode off) on 127.0.0.1:PORT, metrics on
# PORT+1100, data in DATA; EXTRA (TOML) is appended.
plain_quire_config() {
    local file="$1" repo="$2" port="$3" data="$4" extra="${5:-}"
    cat >"$file" <<EOF
[site]
title = "Bench"
base_url = "http://127.0.0.1:$port"
$(example_paths "$repo" "$data")
[listen]
http = "127.0.0.1:$port"
metrics = "127.0.0.1:$((port + 1100))"
[tls]
mode = "off"
$extra
EOF
}

# article_path BASE_URL [PATH]: prints PATH, or else the first /posts/... link
# on BASE_URL's home page; fails on a path the benchmarks do not support.
article_path() {
    local base="$1" path="${2:-}"
    if [ -z "$path" ]; then
        path="$(curl -sf "$base/" | grep -oE 'href="[^"]*/posts/[^"]+"' | head -n1 |
                sed -E 's/^href="//; s/"$//; s#^[a-z]+://[^/]*##' || true)"
        if [ -z "$path" ]; then
            echo "no /posts/... link on the home page; pass the article path" >&2
            return 1
        fi
    fi
    case "$path" in
        /*) ;;
        *) echo "article path must start with /: $path" >&2; return 1 ;;
    esac
    case "$path" in
        *..*|*\?*|*\#*|*%*) echo "unsupported article path: $path" >&2; return 1 ;;
    esac
    printf '%s\n' "$path"
}
