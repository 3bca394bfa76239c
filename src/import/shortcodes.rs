//! Template calls inside imported markdown: Hugo's `{{< >}}`/`{{% %}}`,
//! Jekyll's Liquid `{% %}`/`{{ }}`, Zola's `{{ f() }}`/`{% f() %}`. The ones
//! with an exact markdown meaning are rendered (Hugo `highlight`, `figure`,
//! `ref`/`relref`; Jekyll `highlight`, `post_url`, `link`, `raw`,
//! `comment`, `site.baseurl`/`site.url`); every other one is listed with its
//! file:line and left in place inside a code span. A code span rather than
//! an HTML comment: the reader of the post then sees that something is
//! missing there, and the author finds it by its text, where a comment would
//! hide the gap. Fenced code blocks are left as written: a call there is an
//! example, not a call.

use super::{Dialect, Note};

/// Where a `ref`, `post_url` or `link` target lives now (its new URL).
pub type Resolve<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The body with what maps rendered and the rest wrapped, and a note for
/// each call not rendered.
pub fn render(
    body: &str,
    dialect: Dialect,
    origin: &str,
    body_line: usize,
    resolve: Resolve,
) -> (String, Vec<Note>) {
    let delimiters: &[(&str, &str)] = match dialect {
        Dialect::Hugo => &[("{{<", ">}}"), ("{{%", "%}}")],
        Dialect::Jekyll | Dialect::Zola => &[("{%", "%}"), ("{{", "}}")],
        Dialect::None => return (body.to_string(), Vec::new()),
    };
    let fences = fenced(body);
    let mut out = String::with_capacity(body.len());
    let mut notes = Vec::new();
    let line_at = |at: usize| body_line + body[..at].matches('\n').count();
    let mut at = 0;
    while at < body.len() {
        let next = delimiters
            .iter()
            .filter_map(|(open, close)| body[at..].find(open).map(|i| (at + i, *open, *close)))
            .min_by_key(|(i, _, _)| *i);
        let Some((start, open, close)) = next else {
            break;
        };
        if let Some(fence) = fences.iter().find(|f| f.contains(&start)) {
            out.push_str(&body[at..fence.end]);
            at = fence.end;
            continue;
        }
        let Some(close_at) = body[start + open.len()..].find(close) else {
            break;
        };
        let end = start + open.len() + close_at + close.len();
        out.push_str(&body[at..start]);
        let call = Call::new(&body[start..end], open, close);
        let tag = Tag {
            text: &body[start..end],
            call,
            line: line_at(start),
        };
        let ctx = Context {
            body,
            end,
            dialect,
            origin,
            resolve,
        };
        at = match render_one(&tag, &ctx, &mut out, &mut notes) {
            Some(next) => next,
            None => {
                wrap(&mut out, tag.text);
                notes.push(Note::new(
                    origin,
                    tag.line,
                    format!(
                        "{} `{}` not rendered; left in a code span: replace it by hand",
                        dialect_name(dialect),
                        tag.call.name
                    ),
                ));
                end
            }
        };
    }
    if at < body.len() {
        out.push_str(&body[at..]);
    }
    (out, notes)
}

struct Tag<'a> {
    text: &'a str,
    call: Call,
    line: usize,
}

struct Context<'a> {
    body: &'a str,
    /// Just past the tag.
    end: usize,
    dialect: Dialect,
    origin: &'a str,
    resolve: Resolve<'a>,
}

/// A call's name and arguments (positional, or `key=value`).
struct Call {
    name: String,
    args: Vec<(Option<String>, String)>,
    /// Hugo's `{{</* x */>}}`: the call written out, not made.
    escaped: bool,
}

impl Call {
    fn new(text: &str, open: &str, close: &str) -> Call {
        let inner = &text[open.len()..text.len() - close.len()];
        let inner = inner.trim_matches('-').trim();
        let escaped = inner.starts_with("/*") && inner.ends_with("*/");
        let inner = inner.trim_start_matches("/*").trim_end_matches("*/").trim();
        let words = split_args(inner);
        let mut words = words.into_iter();
        let first = words.next().unwrap_or_default();
        let name = first.split('(').next().unwrap_or("").to_string();
        let args = words
            .map(|w| match w.split_once('=') {
                Some((k, v)) if !k.contains(['"', '\'']) => {
                    (Some(k.to_string()), unquote(v).to_string())
                }
                _ => (None, unquote(&w).to_string()),
            })
            .collect();
        Call {
            name,
            args,
            escaped,
        }
    }

    fn positional(&self, index: usize) -> Option<&str> {
        self.args
            .iter()
            .filter(|(k, _)| k.is_none())
            .nth(index)
            .map(|(_, v)| v.as_str())
    }

    fn named(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k.as_deref() == Some(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits on whitespace outside quotes.
fn split_args(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    for c in text.chars() {
        match (quote, c) {
            (None, '"' | '\'' | '`') => {
                quote = Some(c);
                word.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                word.push(c);
            }
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (_, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn unquote(text: &str) -> &str {
    for q in ['"', '\'', '`'] {
        if let Some(inner) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            return inner;
        }
    }
    text
}

fn dialect_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Hugo => "Hugo shortcode",
        Dialect::Jekyll => "Liquid tag",
        Dialect::Zola => "Zola shortcode",
        Dialect::None => "call",
    }
}

/// Renders a tag it can map exactly; where to go on, or `None`.
fn render_one(tag: &Tag, ctx: &Context, out: &mut String, notes: &mut Vec<Note>) -> Option<usize> {
    let call = &tag.call;
    if call.escaped {
        out.push_str(&tag.text.replacen("/*", "", 1).replacen("*/", "", 1));
        return Some(ctx.end);
    }
    let body_from = |closing: &[&str]| -> Option<(usize, usize)> {
        closing
            .iter()
            .filter_map(|c| ctx.body[ctx.end..].find(c).map(|i| (i, c.len())))
            .min()
            .map(|(i, len)| (ctx.end + i, ctx.end + i + len))
    };
    match (ctx.dialect, call.name.as_str()) {
        (Dialect::Hugo, "highlight") | (Dialect::Jekyll, "highlight") => {
            let closers: &[&str] = if ctx.dialect == Dialect::Hugo {
                &[
                    "{{< /highlight >}}",
                    "{{</highlight>}}",
                    "{{% /highlight %}}",
                ]
            } else {
                &[
                    "{% endhighlight %}",
                    "{%endhighlight%}",
                    "{%- endhighlight -%}",
                ]
            };
            let (inner_end, after) = body_from(closers)?;
            let code = ctx.body[ctx.end..inner_end].trim_matches('\n');
            let lang = call.positional(0).unwrap_or("");
            let fence = if code.contains("```") { "~~~~" } else { "```" };
            out.push_str(&format!("{fence}{lang}\n{code}\n{fence}"));
            Some(after)
        }
        (Dialect::Hugo, "figure") => {
            let src = call.named("src")?;
            let alt = call.named("alt").or(call.named("caption")).unwrap_or("");
            let image = match call.named("title") {
                Some(title) => format!("![{alt}]({src} \"{}\")", title.replace('"', "\\\"")),
                None => format!("![{alt}]({src})"),
            };
            match call.named("link") {
                Some(link) => out.push_str(&format!("[{image}]({link})")),
                None => out.push_str(&image),
            }
            if let Some(caption) = call.named("caption") {
                out.push_str(&format!("\n\n*{caption}*"));
            }
            Some(ctx.end)
        }
        (Dialect::Hugo, "ref" | "relref") | (Dialect::Jekyll, "post_url" | "link") => {
            let target = call.positional(0)?;
            match (ctx.resolve)(target) {
                Some(url) => out.push_str(&url),
                None => {
                    notes.push(Note::new(
                        ctx.origin,
                        tag.line,
                        format!(
                            "`{}` points at {target}, which was not imported; left as written, fix the link",
                            tag.text
                        ),
                    ));
                    wrap(out, tag.text);
                }
            }
            Some(ctx.end)
        }
        (Dialect::Jekyll, "raw") => {
            let (inner_end, after) = body_from(&["{% endraw %}", "{%endraw%}"])?;
            out.push_str(&ctx.body[ctx.end..inner_end]);
            Some(after)
        }
        (Dialect::Jekyll, "comment") => {
            let (inner_end, after) = body_from(&["{% endcomment %}", "{%endcomment%}"])?;
            out.push_str(&format!(
                "<!--{}-->",
                ctx.body[ctx.end..inner_end].replace("--", "- -")
            ));
            Some(after)
        }
        (Dialect::Jekyll, "site.baseurl" | "site.url") if call.args.is_empty() => Some(ctx.end),
        _ => None,
    }
}

/// `text` in a code span long enough to hold its backticks.
fn wrap(out: &mut String, text: &str) {
    let mut ticks = "`".to_string();
    while text.contains(ticks.as_str()) {
        ticks.push('`');
    }
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    out.push_str(&format!("{ticks}{pad}{text}{pad}{ticks}"));
}

/// Byte ranges of fenced code blocks (``` or ~~~), fences included.
fn fenced(body: &str) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut open: Option<(usize, char, usize)> = None;
    let mut at = 0;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |m| trimmed.chars().take_while(|c| *c == m).count());
        match (open, marker) {
            (None, Some(m)) if indent < 4 && run >= 3 => open = Some((at, m, run)),
            (Some((start, m, len)), Some(c))
                if c == m && run >= len && trimmed[run..].trim().is_empty() =>
            {
                ranges.push(start..at + line.len());
                open = None;
            }
            _ => {}
        }
        at += line.len();
    }
    if let Some((start, _, _)) = open {
        ranges.push(start..body.len());
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(target: &str) -> Option<String> {
        match target {
            "posts/other.md" | "2010-07-21-name" => Some("/posts/other/".into()),
            _ => None,
        }
    }

    fn run(body: &str, dialect: Dialect) -> (String, Vec<Note>) {
        render(body, dialect, "x.md", 5, &resolve)
    }

    #[test]
    fn renders_what_maps_and_wraps_the_rest() {
        let body = "Intro\n\n{{< highlight rust \"linenos=table\" >}}\nfn main() {}\n{{< /highlight >}}\n\n{{< figure src=\"/a.png\" alt=\"A\" caption=\"Cap\" >}}\n\nSee [o]({{< ref \"posts/other.md\" >}}).\n\n{{< youtube abc >}}\n\n```\n{{< tweet 1 >}}\n```\n{{</* gist x */>}}\n";
        let (out, notes) = run(body, Dialect::Hugo);
        assert!(out.contains("```rust\nfn main() {}\n```"), "{out}");
        assert!(out.contains("![A](/a.png)\n\n*Cap*"), "{out}");
        assert!(out.contains("[o](/posts/other/)"), "{out}");
        assert!(out.contains("`{{< youtube abc >}}`"), "{out}");
        assert!(
            out.contains("```\n{{< tweet 1 >}}\n```"),
            "fences stay: {out}"
        );
        assert!(out.contains("{{< gist x >}}"), "{out}");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0].line, 15);
        assert!(notes[0].message.contains("Hugo shortcode `youtube`"));
    }

    #[test]
    fn jekyll_and_zola() {
        let body = "{% highlight ruby %}\nputs 1\n{% endhighlight %}\n[p]({% post_url 2010-07-21-name %}) ![i]({{ site.baseurl }}/i.png)\n{% include note.html %}\n{% raw %}{{ x }}{% endraw %}\n";
        let (out, notes) = run(body, Dialect::Jekyll);
        assert!(out.contains("```ruby\nputs 1\n```"), "{out}");
        assert!(out.contains("[p](/posts/other/) ![i](/i.png)"), "{out}");
        assert!(out.contains("`{% include note.html %}`"), "{out}");
        assert!(out.contains("\n{{ x }}\n"), "{out}");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0].line, 9);

        let (out, notes) = run("{{ youtube(id=\"x\") }}\n", Dialect::Zola);
        assert_eq!(out, "`{{ youtube(id=\"x\") }}`\n");
        assert!(notes[0].message.contains("Zola shortcode `youtube`"));
    }
}
