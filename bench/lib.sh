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

# quire_binary REPO: prints the quire binary to use: $QUIRE_BIN if set, else a
# fresh `cargo build --release` of REPO.
quire_binary() {
    local bin
    if [ -n "${QUIRE_BIN:-}" ]; then
        bin="$QUIRE_BIN"
    else
        if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
            # shellcheck disable=SC1091
            . "$HOME/.cargo/env"
        fi
        echo "building quire (cargo build --release) ..." >&2
        (cd "$1" && cargo build --release --quiet) >&2
        bin="$1/target/release/quire"
    fi
    [ -x "$bin" ] || { echo "quire binary not found: $bin" >&2; exit 1; }
    printf '%s\n' "$bin"
}

# toml_str TEXT: TEXT as a TOML basic string.
toml_str() {
    local s="${1//\\/\\\\}"
    printf '"%s"' "${s//\"/\\\"}"
}
