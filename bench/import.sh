#!/usr/bin/env bash
# Import benchmark: `quire import` of a generated N-post Hugo site, timed next
# to `hugo` building the same site, same run.
#
#   bench/import.sh [N]          N posts (default 1000)
#
# The Hugo site: bench/gen-posts.py's posts (prose, a table, a code block, a
# footnote) named as Hugo sites name them (post-NNNN.md), every 10th a page
# bundle with an image beside index.md, every 5th with an alias, every 7th
# with a highlight shortcode, a custom [permalinks] for the posts section.
# Each quire run imports into an empty folder (the --prepare step empties
# it), so every run writes every file.
#
# Environment:
#   RUNS=10 WARMUP=1        hyperfine settings
#   QUIRE_BIN=path          use this binary instead of running cargo build
#   KEEP=1                  keep the temp dir and print its path
#
# Not part of the test suite. Binds nothing; writes only inside a temp dir.
set -euo pipefail

N="${1:-1000}"
RUNS="${RUNS:-10}"
WARMUP="${WARMUP:-1}"

case "$N" in ''|*[!0-9]*) echo "usage: $0 [N posts]" >&2; exit 2 ;; esac

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
need python3 python3
need hyperfine hyperfine
need hugo hugo

TMP="$(mktemp -d "${TMPDIR:-/tmp}/quire-bench-import.XXXXXX")"
cleanup() {
    remove_tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

QUIRE="$(quire_binary "$REPO")"

# ---------------------------------------------------------------- the Hugo site
H="$TMP/hugo"
Q="$TMP/quire"
mkdir -p "$H/content/posts" "$H/static/images" "$H/layouts/_default" "$Q/content"
python3 "$HERE/gen-posts.py" --count "$N" "$TMP/generated"
python3 - "$TMP/generated" "$H" <<'EOF'
import os, sys
src, site = sys.argv[1], sys.argv[2]
png = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")
for name in sorted(os.listdir(src)):
    n = int(name[-7:-3])
    text = open(os.path.join(src, name), encoding="utf-8").read()
    head, body = text[4:].split("+++\n", 1)
    if n % 5 == 0:
        head += f'aliases = ["/old/{n:04d}/"]\n'
    if n % 7 == 0:
        body += '\n{{< highlight go >}}\nfunc main() {}\n{{< /highlight >}}\n'
    stem = f"post-{n:04d}"
    if n % 10 == 0:
        folder = os.path.join(site, "content/posts", stem)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "cover.png"), "wb") as fh:
            fh.write(png)
        body += "\n![The cover](cover.png)\n"
        path = os.path.join(folder, "index.md")
    else:
        path = os.path.join(site, "content/posts", stem + ".md")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("+++\n" + head + "+++\n" + body)
EOF
cat >"$H/hugo.toml" <<'EOF'
baseURL = "http://127.0.0.1:8080/"
title = "Bench"
languageCode = "en"
disableHugoGeneratorInject = true

[permalinks]
  posts = "/:year/:month/:slug/"

[taxonomies]
  tag = "tags"
EOF
cat >"$H/layouts/_default/single.html" <<'EOF'
<!DOCTYPE html><html><head><title>{{ .Title }}</title></head><body><h1>{{ .Title }}</h1>{{ .Content }}</body></html>
EOF
cat >"$H/layouts/_default/list.html" <<'EOF'
<!DOCTYPE html><html><head><title>{{ .Title }}</title></head><body><ul>{{ range .Pages }}<li><a href="{{ .RelPermalink }}">{{ .Title }}</a></li>{{ end }}</ul></body></html>
EOF
cat >"$Q/quire.toml" <<'EOF'
[site]
title = "Bench"
base_url = "http://127.0.0.1:8080"
[paths]
content = "content"
data = "data"
[tls]
mode = "off"
EOF

# ---------------------------------------------------------------- sanity runs
echo "== hugo, one build:" >&2
hugo --quiet --source "$H" --destination "$TMP/public" >&2
rm -rf "$TMP/public"
echo "== quire import, once, then quire check:" >&2
(cd "$Q" && "$QUIRE" import "$H" --config quire.toml) >"$TMP/import.txt"
head -5 "$TMP/import.txt" >&2
imported=$(find "$Q/content/posts" -name '*.md' | wc -l)
if [ "$imported" -ne "$N" ]; then
    echo "quire imported $imported posts, expected $N" >&2; exit 1
fi
set +e
(cd "$Q" && "$QUIRE" check --config quire.toml) >&2
rc=$?
set -e
[ "$rc" -eq 0 ] || { echo "quire check failed on the import (exit $rc)" >&2; exit 1; }

# ---------------------------------------------------------------- timing
HF=(hyperfine --warmup "$WARMUP" --runs "$RUNS" --style basic)
"${HF[@]}" --export-json "$TMP/hugo.json" --prepare "rm -rf $TMP/public" \
    -n hugo "hugo --quiet --source $H --destination $TMP/public" >&2
"${HF[@]}" --export-json "$TMP/quire.json" --prepare "rm -rf $Q/content" \
    -n "quire import" "cd $Q && $QUIRE import $H --config quire.toml" >&2

# ---------------------------------------------------------------- report
echo
machine_banner "$(quire_version "$QUIRE")" "hugo $(hugo version | awk '{print $2}')" "$(peer_version hyperfine)"
python3 - "$TMP" "$N" "$RUNS" <<'EOF'
import json, os, sys
tmp, n, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def load(name):
    r = json.load(open(os.path.join(tmp, name + ".json")))["results"][0]
    return r["mean"], r["stddev"] or 0.0, r["min"], r["max"]

h, q = load("hugo"), load("quire")
print(f"import of a {n}-post Hugo site")
print(f"{'tool':<14}{'mean s':>10}{'± s':>9}{'min s':>9}{'max s':>9}{'ms/post':>10}")
for name, r in (("hugo build", h), ("quire import", q)):
    mean, sd, lo, hi = r
    print(f"{name:<14}{mean:>10.3f}{sd:>9.3f}{lo:>9.3f}{hi:>9.3f}{mean * 1000 / n:>10.3f}")
ratio = q[0] / h[0]
print(f"ratio quire import / hugo build = {ratio:.2f}")
with open(os.path.join(tmp, "summary.tsv"), "a") as f:
    f.write("\t".join((f"import of a {n}-post Hugo site vs hugo building it (hyperfine, mean of {runs} runs)",
                       f"{q[0]:.3f} s", "-", f"Hugo {h[0]:.3f} s", f"quire/Hugo {ratio:.2f} of the time")) + "\n")
EOF
publish_summary "$TMP/summary.tsv"
