#!/usr/bin/env python3
"""Generate a deterministic set of blog posts for the site-build benchmark.

Each post is written, byte for byte identical, into every destination
directory given on the command line (one for quire, one for Hugo), as
YYYY-MM-DD-post-NNNN.md with TOML front matter between `+++` lines:

    +++
    title = "..."
    date = 2021-01-01
    tags = ["rust", "web"]
    description = "..."
    +++

The body has ~400-600 words of prose in a few paragraphs with a heading and
some inline markup, one table, one fenced code block (rust or python, ~15
lines) and one footnote. Output depends only on --count and --seed.

Usage: gen-posts.py [--count N] [--seed S] [--date-style bare|quoted] DEST...
"""

import argparse
import datetime
import os
import random
import sys

TAGS = [
    "rust", "python", "web", "performance", "databases", "networking",
    "testing", "security", "devops", "linux", "async", "compilers",
    "tooling", "design", "cloud", "observability", "caching", "parsing",
    "concurrency", "embedded",
]

WORDS = """
the a an of to in and or but for with on at by from into over under about
between through during without within while because although when where which
that this these those it its we our you your they their system server request
response cache latency throughput memory thread task queue buffer socket
connection protocol header payload index query table column row schema
migration transaction lock mutex channel future executor runtime scheduler
allocator pointer reference lifetime borrow trait generic macro module crate
package library binary compiler parser lexer token syntax grammar tree node
graph edge vertex path route handler middleware template render markdown
document page feed sitemap certificate renewal domain deploy release build
pipeline test benchmark profile trace metric counter histogram sample signal
config option default value error result panic retry backoff timeout deadline
budget limit quota window batch stream chunk frame packet byte bit word line
file directory disk storage snapshot backup restore replica shard partition
cluster node leader follower vote term log commit apply read write append
fast slow small large simple complex careful clear honest stable fragile
robust lazy eager quiet noisy cheap expensive hot cold warm fresh stale
often rarely usually always never sometimes quickly slowly carefully simply
measure compare reduce increase avoid prefer choose keep drop move copy
share spawn join wait poll wake notify flush sync merge split sort filter map
fold collect parse format serialize validate check verify assume prove
""".split()

CODE_WORDS = [
    "cache", "entry", "item", "node", "page", "post", "slot", "frame", "batch",
    "chunk", "token", "span", "event", "record", "bucket", "window", "queue",
]


def sentence(rng, lo=8, hi=17, markup=True):
    n = rng.randint(lo, hi)
    words = [rng.choice(WORDS) for _ in range(n)]
    if markup and n > 6:
        r = rng.random()
        i = rng.randrange(1, n - 1)
        if r < 0.12:
            words[i] = "*" + words[i] + "*"
        elif r < 0.20:
            words[i] = "**" + words[i] + "**"
        elif r < 0.30:
            words[i] = "`" + words[i] + "_" + rng.choice(CODE_WORDS) + "()`"
    words[0] = words[0].capitalize()
    end = "." if rng.random() < 0.9 else "?"
    if rng.random() < 0.2:
        words[n // 2] += ","
    return " ".join(words) + end, n


def title_words(rng, k):
    return " ".join(w.capitalize() for w in rng.sample(
        [w for w in WORDS if len(w) > 3], k))


def rust_block(rng):
    s = rng.choice(CODE_WORDS)
    t = s.capitalize()
    f = rng.choice(["size", "weight", "count", "age", "score"])
    lim = rng.randint(8, 4096)
    return "\n".join([
        "```rust",
        "use std::collections::HashMap;",
        "",
        "#[derive(Debug, Clone)]",
        f"pub struct {t} {{",
        "    id: u64,",
        f"    {f}: usize,",
        "}",
        "",
        f"/// Groups every {s} by id and drops the ones over the limit.",
        f"pub fn group_{s}s(items: &[{t}]) -> HashMap<u64, Vec<{t}>> {{",
        "    let mut out: HashMap<u64, Vec<_>> = HashMap::new();",
        f"    for it in items.iter().filter(|it| it.{f} <= {lim}) {{",
        "        out.entry(it.id).or_default().push(it.clone());",
        "    }",
        "    out",
        "}",
        "```",
    ])


def python_block(rng):
    s = rng.choice(CODE_WORDS)
    f = rng.choice(["size", "weight", "count", "age", "score"])
    lim = rng.randint(8, 4096)
    return "\n".join([
        "```python",
        "from collections import defaultdict",
        "from dataclasses import dataclass",
        "",
        "",
        "@dataclass",
        f"class {s.capitalize()}:",
        "    id: int",
        f"    {f}: int",
        "",
        "",
        f"def group_{s}s(items):",
        f'    """Group every {s} by id, dropping the ones over the limit."""',
        "    out = defaultdict(list)",
        "    for it in items:",
        f"        if it.{f} <= {lim}:",
        "            out[it.id].append(it)",
        "    return dict(out)",
        "```",
    ])


def table(rng):
    rows = ["| Case | Before | After | Change |",
            "|:-----|-------:|------:|-------:|"]
    for _ in range(rng.randint(3, 5)):
        name = rng.choice(WORDS) + " " + rng.choice(WORDS)
        before = rng.uniform(5, 500)
        after = before * rng.uniform(0.3, 1.2)
        change = (after - before) / before * 100
        rows.append(f"| {name} | {before:.1f} ms | {after:.1f} ms | {change:+.0f}% |")
    return "\n".join(rows)


def post(rng, i, day, date_style):
    tags = rng.sample(TAGS, rng.choice([2, 3]))
    title = f"Post {i:04d}: {title_words(rng, 4)}"
    desc, _ = sentence(rng, 10, 16, markup=False)
    date = day.isoformat()
    date_val = date if date_style == "bare" else f'"{date}"'
    front = "\n".join([
        "+++",
        f'title = "{title}"',
        f"date = {date_val}",
        "tags = [" + ", ".join(f'"{t}"' for t in tags) + "]",
        f'description = "{desc}"',
        "+++",
    ])

    # Prose: 400-600 words split into 4-7 paragraphs.
    target = rng.randint(400, 600)
    nparas = rng.randint(4, 7)
    per_para = target / nparas
    paras, words, cur, cur_words = [], 0, [], 0
    while words < target:
        s, n = sentence(rng)
        cur.append(s)
        cur_words += n
        words += n
        if cur_words >= per_para:
            paras.append(" ".join(cur))
            cur, cur_words = [], 0
    if cur:
        paras.append(" ".join(cur))

    # One footnote reference inside the first paragraph.
    paras[0] += "[^1]"
    footnote = "[^1]: " + sentence(rng, 8, 14, markup=False)[0]

    code = rust_block(rng) if rng.random() < 0.5 else python_block(rng)
    heading = "## " + title_words(rng, 3)

    mid = max(1, len(paras) // 2)
    blocks = paras[:mid]
    blocks += [table(rng), heading]
    blocks += paras[mid:]
    blocks.insert(len(blocks) - 1, code)
    blocks.append(footnote)

    name = f"{date}-post-{i:04d}.md"
    return name, front + "\n\n" + "\n\n".join(blocks) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=20240101)
    ap.add_argument("--date-style", choices=["bare", "quoted"], default="bare",
                    help="TOML local date (bare) or a string (quoted)")
    ap.add_argument("dest", nargs="+", help="directories to write posts into")
    args = ap.parse_args()
    if args.count < 1:
        ap.error("--count must be at least 1")

    rng = random.Random(args.seed)
    start = datetime.date(2021, 1, 1)
    for d in args.dest:
        os.makedirs(d, exist_ok=True)
    total_bytes = 0
    for i in range(1, args.count + 1):
        name, text = post(rng, i, start + datetime.timedelta(days=i - 1),
                          args.date_style)
        data = text.encode("utf-8")
        total_bytes += len(data)
        for d in args.dest:
            with open(os.path.join(d, name), "wb") as fh:
                fh.write(data)
    print(f"gen-posts: {args.count} posts, {total_bytes / 1024:.0f} KiB each tree, "
          f"seed {args.seed}", file=sys.stderr)


if __name__ == "__main__":
    main()
