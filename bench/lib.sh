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
