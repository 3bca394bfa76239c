#!/usr/bin/env bash
# Checks deploy/quire.service without a running systemd (CI, containers), so a
# typo in the unit fails here rather than on a server:
# 1. `systemd-analyze verify` on a copy whose ExecStart= names a quire binary
#    that exists (verify refuses commands that do not). Verify only warns about
#    unknown keys and bad values and still exits 0, so any line it prints about
#    the unit counts as a failure.
# 2. `systemd-analyze security` must rate the unit's exposure at most 2.0, so
#    the hardening cannot quietly erode.
# Usage: bash deploy/check-unit.sh [QUIRE-BINARY]   (default: target/debug/quire)
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages it needs, as "command:package" pairs: systemd-analyze, and
# /bin/kill for ExecReload= (absent from slim container images).
required=("systemd-analyze:systemd" "/bin/kill:procps")
missing=()
for pair in "${required[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}; run as root, or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

binary=${1:-}
if [ -z "$binary" ]; then
  for candidate in target/debug/quire target/release/quire; do
    if [ -x "$candidate" ]; then binary=$candidate; break; fi
  done
fi
if [ -z "$binary" ]; then
  # Verify only checks that ExecStart= names an executable file.
  echo "check-unit: no quire binary built yet; using a stand-in executable for ExecStart="
  binary=$work/quire
  printf '#!/bin/sh\n' >"$binary"
  chmod +x "$binary"
fi
if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
  echo "check-unit: $binary is not an executable file" >&2
  exit 1
fi
binary=$(realpath "$binary")

# The copy keeps the unit's name (verify derives the unit type from it) and its
# line numbers, so messages point at the right line of deploy/quire.service.
unit=$work/quire.service
sed "s|/usr/local/bin/quire|$binary|g" deploy/quire.service >"$unit"

status=0
output=$(systemd-analyze verify --man=no "$unit" 2>&1) || status=$?
output=${output//"$unit"/deploy/quire.service}
about_unit=$(grep -F 'quire.service' <<<"$output" || true)
if [ "$status" -ne 0 ] || [ -n "$about_unit" ]; then
  echo "check-unit: systemd-analyze verify rejects deploy/quire.service (exit $status):" >&2
  printf '%s\n' "$output" >&2
  exit 1
fi
if [ -n "$output" ]; then
  # Complaints about other units (the targets it is ordered after) are not ours to fix.
  echo "check-unit: systemd-analyze verify, about other units:"
  printf '%s\n' "$output"
fi

status=0
report=$(systemd-analyze security --offline=true --threshold=20 "$unit" 2>&1) || status=$?
overall=$(grep -F 'Overall exposure' <<<"$report" || true)
if [ -z "$overall" ]; then
  echo "check-unit: systemd-analyze security could not rate the unit (--offline needs systemd 250 or later):" >&2
  printf '%s\n' "$report" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "check-unit: deploy/quire.service is less hardened than allowed (at most 2.0); what adds exposure:" >&2
  grep -v '^✓' <<<"$report" >&2
  exit 1
fi
echo "check-unit: deploy/quire.service verifies; ${overall#→ }"
