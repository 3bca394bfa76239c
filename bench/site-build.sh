#!/usr/bin/env bash
# Site-build benchmark: quire vs Hugo on the same N generated posts.
#
#   bench/site-build.sh [N]          N posts (default 1000)
#
# Environment:
#   RUNS=10 WARMUP=1        hyperfine settings
#   ONLY=hugo|quire         time only one side (no ratio then)
#   QUIRE_BIN=path          use this binary instead of running cargo build
#   DATE_STYLE=bare|quoted  front matter date as TOML date (default) or string
#   KEEP=1                  keep the temp dir and print its path
#   SUMMARY_FILE=path       append the summary line to path (bench/all.sh's table)
#
# Not part of the test suite. Binds nothing; writes only inside a temp dir.
set -euo pipefail

N="${1:-1000}"
RUNS="${RUNS:-10}"
WARMUP="${WARMUP:-1}"
ONLY="${ONLY:-}"
DATE_STYLE="${DATE_STYLE:-bare}"

case "$N" in ''|*[!0-9]*) echo "usage: $0 [N posts]" >&2; exit 2 ;; esac
case "$ONLY" in ''|hugo|quire) ;; *) echo "ONLY must be hugo or quire" >&2; exit 2 ;; esac

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
need python3 python3
need hyperfine hyperfine
[ "$ONLY" = quire ] || need hugo hugo

TMP="$(mktemp -d "${TMPDIR:-/tmp}/quire-bench-build.XXXXXX")"
cleanup() {
    remove_tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- quire binary
QUIRE=""
if [ "$ONLY" != hugo ]; then
    QUIRE="$(quire_binary "$REPO")"
fi

# ---------------------------------------------------------------- content
Q="$TMP/quire"
H="$TMP/hugo"
mkdir -p "$Q/content/posts" "$Q/static" "$Q/data" \
         "$H/content/posts" "$H/static" "$H/layouts/_default"
python3 "$HERE/gen-posts.py" --count "$N" --date-style "$DATE_STYLE" \
    "$Q/content/posts" "$H/content/posts"

# quire site: the repo's templates when it has them, else an empty dir
# (quire is then expected to use its built-in templates).
if [ -d "$REPO/templates" ]; then
    cp -R "$REPO/templates" "$Q/templates"
else
    mkdir -p "$Q/templates"
fi
cat >"$Q/quire.toml" <<'EOF'
[site]
title = "Bench"
base_url = "http://127.0.0.1:8080"
[paths]
content = "content"
static = "static"
templates = "templates"
data = "data"
[listen]
http = "127.0.0.1:8080"
[tls]
mode = "off"
EOF

# Hugo site, laid out by hand like `hugo new site` would.
cat >"$H/hugo.toml" <<'EOF'
baseURL = "http://127.0.0.1:8080/"
title = "Bench"
languageCode = "en"
disableHugoGeneratorInject = true

[taxonomies]
  tag = "tags"

[markup]
  [markup.highlight]
    noClasses = false
    codeFences = true
    guessSyntax = false
  [markup.goldmark.extensions]
    footnote = true
    table = true
EOF

cat >"$H/layouts/_default/baseof.html" <<'EOF'
<!DOCTYPE html>
<html lang="{{ site.LanguageCode }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ block "title" . }}{{ if .IsHome }}{{ site.Title }}{{ else }}{{ .Title }} | {{ site.Title }}{{ end }}{{ end }}</title>
<meta name="description" content="{{ with .Description }}{{ . }}{{ else }}{{ site.Title }}{{ end }}">
<link rel="canonical" href="{{ .Permalink }}">
{{ range .AlternativeOutputFormats }}<link rel="{{ .Rel }}" type="{{ .MediaType.Type }}" href="{{ .Permalink }}" title="{{ site.Title }}">
{{ end }}</head>
<body>
<header><a href="{{ "/" | relURL }}">{{ site.Title }}</a> <a href="{{ "/tags/" | relURL }}">Tags</a></header>
<main>
{{ block "main" . }}{{ end }}
</main>
<footer>{{ site.Title }}</footer>
</body>
</html>
EOF

cat >"$H/layouts/_default/single.html" <<'EOF'
{{ define "main" }}
<article>
<h1>{{ .Title }}</h1>
<p><time datetime="{{ .Date.Format "2006-01-02" }}">{{ .Date.Format "January 2, 2006" }}</time>
{{ with .GetTerms "tags" }} &middot; {{ range . }}<a href="{{ .RelPermalink }}">{{ .LinkTitle }}</a> {{ end }}{{ end }}</p>
{{ .Content }}
</article>
<nav>
{{ with .PrevInSection }}<a href="{{ .RelPermalink }}">{{ .Title }}</a>{{ end }}
{{ with .NextInSection }}<a href="{{ .RelPermalink }}">{{ .Title }}</a>{{ end }}
</nav>
{{ end }}
EOF

# Section pages (/posts/) and tag pages (/tags/NAME/): every page, newest first.
cat >"$H/layouts/_default/list.html" <<'EOF'
{{ define "main" }}
<h1>{{ .Title }}</h1>
<ul>
{{ range .Pages }}<li><a href="{{ .RelPermalink }}">{{ .Title }}</a> <time>{{ .Date.Format "2006-01-02" }}</time></li>
{{ end }}</ul>
{{ end }}
EOF

# /tags/: every tag with its post count.
cat >"$H/layouts/_default/terms.html" <<'EOF'
{{ define "main" }}
<h1>{{ .Title }}</h1>
<ul>
{{ range .Data.Terms.Alphabetical }}<li><a href="{{ .Page.RelPermalink }}">{{ .Page.Title }}</a> ({{ .Count }})</li>
{{ end }}</ul>
{{ end }}
EOF

# Home: posts newest first, 10 a page (/, /page/2/, ...).
cat >"$H/layouts/index.html" <<'EOF'
{{ define "main" }}
{{ $pager := .Paginate (where site.RegularPages "Section" "posts") 10 }}
{{ range $pager.Pages }}<article>
<h2><a href="{{ .RelPermalink }}">{{ .Title }}</a></h2>
<p><time datetime="{{ .Date.Format "2006-01-02" }}">{{ .Date.Format "January 2, 2006" }}</time></p>
<p>{{ .Description }}</p>
</article>
{{ end }}
<nav>
{{ with $pager.Prev }}<a href="{{ .URL }}">Newer</a>{{ end }}
Page {{ $pager.PageNumber }} of {{ $pager.TotalPages }}
{{ with $pager.Next }}<a href="{{ .URL }}">Older</a>{{ end }}
</nav>
{{ end }}
EOF

# ---------------------------------------------------------------- sanity runs
HUGO_CMD="hugo --quiet --source $H --destination $H/public"
QUIRE_CMD="$QUIRE check --config $Q/quire.toml"

if [ "$ONLY" != quire ]; then
    echo "== hugo, one build:" >&2
    rm -rf "$H/public"
    hugo --source "$H" --destination "$H/public" >&2
    html=$(find "$H/public" -name '*.html' | wc -l)
    posts=$(find "$H/public/posts" -mindepth 2 -name index.html | wc -l)
    # /page/1/ is only an alias (redirect) to /, so it stands in for the home page.
    pages=$({ find "$H/public/page" -mindepth 2 -name index.html 2>/dev/null || true; } | wc -l)
    tags=$(find "$H/public/tags" -mindepth 2 -name index.html | wc -l)
    echo "hugo output: $html html files ($posts posts, $((pages > 0 ? pages : 1)) home pages," \
         "$tags tag pages), rss: $(find "$H/public" -name index.xml | wc -l)" >&2
    if [ "$posts" -ne "$N" ]; then
        echo "hugo rendered $posts posts, expected $N" >&2; exit 1
    fi
    rm -rf "$H/public"
fi

if [ "$ONLY" != hugo ]; then
    echo "== quire check, once:" >&2
    set +e
    "$QUIRE" check --config "$Q/quire.toml" >&2
    rc=$?
    set -e
    if [ "$rc" -ne 0 ]; then
        echo "quire check failed (exit $rc); not timing" >&2; exit 1
    fi
fi

# ---------------------------------------------------------------- timing
HF=(hyperfine --warmup "$WARMUP" --runs "$RUNS" --style basic)
if [ "$ONLY" != quire ]; then
    "${HF[@]}" --export-json "$TMP/hugo.json" \
        --prepare "rm -rf $H/public" -n hugo "$HUGO_CMD" >&2
fi
if [ "$ONLY" != hugo ]; then
    "${HF[@]}" --export-json "$TMP/quire.json" -n quire "$QUIRE_CMD" >&2
fi

# ---------------------------------------------------------------- report
HUGO_VERSION=""
[ "$ONLY" = quire ] || HUGO_VERSION="$(hugo version | awk '{print $2}')"
VERSIONS=()
[ -z "$QUIRE" ] || VERSIONS+=("$(quire_version "$QUIRE")")
[ -z "$HUGO_VERSION" ] || VERSIONS+=("hugo $HUGO_VERSION")
VERSIONS+=("$(peer_version hyperfine)")
echo
machine_banner "${VERSIONS[@]}"
python3 - "$TMP" "$N" "$(nproc)" "$HUGO_VERSION" "$RUNS" <<'EOF'
import json, os, sys
tmp, n, cpus, hugo_version, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]

def load(name):
    p = os.path.join(tmp, name + ".json")
    if not os.path.exists(p):
        return None
    r = json.load(open(p))["results"][0]
    return r["mean"], r["stddev"] or 0.0, r["min"], r["max"]

h, q = load("hugo"), load("quire")
print(f"site build, {n} posts, nproc {cpus}" + (f", hugo {hugo_version}" if hugo_version else ""))
print(f"{'tool':<8}{'mean s':>10}{'± s':>9}{'min s':>9}{'max s':>9}{'ms/post':>10}")
for name, r in (("hugo", h), ("quire", q)):
    if r:
        mean, sd, lo, hi = r
        print(f"{name:<8}{mean:>10.3f}{sd:>9.3f}{lo:>9.3f}{hi:>9.3f}{mean * 1000 / n:>10.3f}")

def summary(*cells):
    """One line of bench/all.sh's table: measurement, quire, nginx, other peer, ratio."""
    with open(os.path.join(tmp, "summary.tsv"), "a") as f:
        f.write("\t".join(cells) + "\n")

if h and q:
    ratio = q[0] / h[0]
    verdict = "ok" if ratio <= 0.5 else "MISSED"
    print(f"ratio quire/hugo = {ratio:.2f} (target <= 0.50: {verdict})")
    summary(f"site build, {n} generated posts (hyperfine, mean of {runs} runs)",
            f"{q[0]:.3f} s", "-", f"Hugo {h[0]:.3f} s", f"quire/Hugo {ratio:.2f} of the time")
EOF
publish_summary "$TMP/summary.tsv"
