//! Small cases, one mapping each: the exact markdown and the round trip.

use super::{converts, kept, render, round_trip, to_markdown};

#[test]
fn headings_become_atx() {
    converts(
        "<h1>One</h1><h2>Two <em>it</em></h2><h3>C#</h3><h4>Issue #</h4><h5>x {y}</h5><h6>Six</h6>",
        "# One\n\n## Two *it*\n\n### C\\#\n\n#### Issue \\#\n\n##### x {y&#125;\n\n###### Six\n",
    );
}

#[test]
fn heading_ids_quire_would_not_make_are_kept() {
    converts(
        "<h2 id=\"hello-world\">Hello, World</h2><h2 id=\"intro\">Getting started</h2>",
        "## Hello, World\n\n## Getting started {#intro}\n",
    );
}

#[test]
fn paragraphs_with_emphasis_strike_and_code() {
    converts(
        "<p>Some <em>em</em>, <i>i</i>, <strong>strong</strong>, <b>b</b>, <del>del</del> and <s>s</s>.</p><p>Code <code>x = 1</code> here.</p>",
        "Some *em*, *i*, **strong**, **b**, ~~del~~ and ~~s~~.\n\nCode `x = 1` here.\n",
    );
}

#[test]
fn emphasis_that_markdown_cannot_delimit_keeps_its_tags() {
    converts(
        "<p><strong>Note:</strong>Here and a<em>\"q\"</em>b</p>",
        "<strong>Note:</strong>Here and a<em>\"q\"</em>b\n",
    );
    converts("<p><em><em>x</em></em> y</p>", "<em>*x*</em> y\n");
    converts("<p><em>a</em><em>b</em></p>", "*a*<em>b</em>\n");
    converts(
        "<p><strong><em>both</em></strong></p>",
        "<strong>*both*</strong>\n",
    );
    converts("<p>in<em>side</em>word</p>", "in*side*word\n");
}

#[test]
fn spaces_move_out_of_emphasis() {
    converts("<p>a<em> b </em>c</p>", "a *b* c\n");
    converts("<p><strong> </strong>x</p>", "x\n");
}

#[test]
fn code_spans_get_enough_backticks() {
    converts(
        "<p><code>a`b</code> <code>`x</code> <code>``</code></p>",
        "``a`b`` `` `x `` ``` `` ```\n",
    );
}

#[test]
fn line_breaks_are_hard_breaks() {
    converts(
        "<p>one<br>two <br> three<br></p><p>x<br><br>y</p>",
        "one\\\ntwo\\\nthree\n\nx\\\n\\\ny\n",
    );
    converts(
        "<p>a<br># not a heading<br>- nor a list<br>1. nor this</p>",
        "a\\\n\\# not a heading\\\n\\- nor a list\\\n1\\. nor this\n",
    );
}

#[test]
fn breaks_inside_links_and_emphasis_are_tags() {
    converts(
        "<p><a href=\"/x\">a<br></a> <em>b<br>c</em></p>",
        "[a<br>](/x)*b<br>c*\n",
    );
}

#[test]
fn links_keep_targets_and_titles() {
    converts(
        "<p><a href=\"/posts/x/\">abs</a> <a href=\"../y.html\" title=\"A &quot;t&quot;\">rel</a> <a href=\"https://e.org/a b(c)\">odd</a> <a href=\"\">empty</a></p>",
        "[abs](/posts/x/) [rel](../y.html \"A \\\"t\\\"\") [odd](<https://e.org/a b(c)>) [empty](<>)\n",
    );
}

#[test]
fn bare_links_become_autolinks() {
    converts(
        "<p>See <a href=\"https://example.org/x\">https://example.org/x</a>.</p>",
        "See <https://example.org/x>.\n",
    );
}

#[test]
fn anchors_without_href_stay_tags() {
    converts(
        "<p><a id=\"top\" name=\"top\"></a>Start</p>",
        "<a id=\"top\" name=\"top\"></a>Start\n",
    );
}

#[test]
fn images_keep_alt_and_title() {
    let converted = converts(
        "<p><img src=\"/img/a.png\" alt=\"An [a]\" title=\"T\"> <a href=\"/big.png\"><img src=\"b.jpg\" alt=\"\"></a></p>",
        "![An \\[a\\]](/img/a.png \"T\") [![](b.jpg)](/big.png)\n",
    );
    assert_eq!(converted.images, ["/img/a.png", "b.jpg"]);
}

#[test]
fn lists_nest_and_keep_their_start() {
    converts(
        "<ul><li>one</li><li>two<ul><li>inner</li></ul></li></ul><ol start=\"3\"><li>three</li><li>four<ol><li>a</li></ol></li></ol>",
        "- one\n- two\n  - inner\n\n3. three\n4. four\n   1. a\n",
    );
}

#[test]
fn items_with_paragraphs_make_a_loose_list() {
    converts(
        "<ul><li><p>first</p><p>more</p></li><li><p>second</p></li></ul>",
        "- first\n\n  more\n\n- second\n",
    );
}

#[test]
fn consecutive_lists_stay_apart() {
    converts(
        "<ul><li>a</li></ul><ul><li>b</li></ul><ol><li>c</li></ol><ol><li>d</li></ol>",
        "- a\n\n+ b\n\n1. c\n\n1) d\n",
    );
}

#[test]
fn an_ordered_list_after_item_text_makes_the_list_loose() {
    round_trip("<ul><li>text<ol start=\"2\"><li>two</li></ol></li></ul>");
}

#[test]
fn blockquotes_nest() {
    converts(
        "<blockquote><p>quoted</p><blockquote><p>deeper</p></blockquote>loose text</blockquote>",
        "> quoted\n>\n> > deeper\n>\n> loose text\n",
    );
}

#[test]
fn rules_are_thematic_breaks() {
    converts(
        "<p>a</p><hr><p>b</p><ul><li><hr></li></ul>",
        "a\n\n***\n\nb\n\n- ***\n",
    );
}

#[test]
fn code_blocks_keep_language_and_text() {
    converts(
        "<pre><code class=\"language-rust\">fn main() {\n    println!(\"&lt;hi&gt;\");\n}\n</code></pre>",
        "```rust\nfn main() {\n    println!(\"<hi>\");\n}\n```\n",
    );
    converts(
        "<pre><code>plain\n\n\ttabbed\n</code></pre>",
        "```\nplain\n\n\ttabbed\n```\n",
    );
    converts(
        "<pre>```\ninside\n````</pre>",
        "`````\n```\ninside\n````\n`````\n",
    );
}

#[test]
fn code_languages_come_from_every_convention() {
    let cases = [
        ("<pre><code class=\"lang-js\">x</code></pre>", "js"),
        (
            "<pre class=\"highlight-python\"><code>x</code></pre>",
            "python",
        ),
        (
            "<pre class=\"sourceCode haskell\"><code class=\"sourceCode haskell\">x</code></pre>",
            "haskell",
        ),
        ("<pre data-lang=\"sh\"><code>x</code></pre>", "sh"),
        (
            "<pre class=\"brush: php; title: ; notranslate\">x</pre>",
            "php",
        ),
        (
            "<div class=\"highlight\"><pre tabindex=\"0\" class=\"chroma\"><code class=\"language-go\" data-lang=\"go\"><span class=\"line\"><span class=\"cl\"><span class=\"kn\">package</span> <span class=\"nx\">main</span>\n</span></span></code></pre></div>",
            "go",
        ),
        (
            "<div class=\"language-ruby highlighter-rouge\"><div class=\"highlight\"><pre class=\"highlight\"><code><span class=\"nb\">puts</span> <span class=\"s2\">\"x\"</span>\n</code></pre></div></div>",
            "ruby",
        ),
        (
            "<pre class=\"wp-block-code\"><code class=\"language-php\">echo 1;</code></pre>",
            "php",
        ),
    ];
    for (html, language) in cases {
        let converted = round_trip(html);
        assert!(
            converted.markdown.starts_with(&format!("```{language}\n")),
            "{html}\n{}",
            converted.markdown
        );
    }
}

#[test]
fn line_numbers_are_left_out() {
    let hugo = "<div class=\"highlight\"><div class=\"chroma\"><table class=\"lntable\"><tr><td class=\"lntd\"><pre tabindex=\"0\" class=\"chroma\"><code><span class=\"lnt\">1\n</span><span class=\"lnt\">2\n</span></code></pre></td><td class=\"lntd\"><pre tabindex=\"0\" class=\"chroma\"><code class=\"language-go\" data-lang=\"go\"><span class=\"line\"><span class=\"cl\">a := 1\n</span></span><span class=\"line\"><span class=\"cl\">b := 2\n</span></span></code></pre></td></tr></table></div></div>";
    assert_eq!(to_markdown(hugo).markdown, "```go\na := 1\nb := 2\n```\n");
    let inline_numbers = "<pre><code class=\"language-go\"><span class=\"line\"><span class=\"ln\">1</span>x\n</span></code></pre>";
    assert_eq!(to_markdown(inline_numbers).markdown, "```go\nx\n```\n");
    let rouge = "<figure class=\"highlight\"><pre><code class=\"language-ruby\" data-lang=\"ruby\"><table class=\"rouge-table\"><tbody><tr><td class=\"gutter gl\"><pre class=\"lineno\">1\n</pre></td><td class=\"code\"><pre><span class=\"nb\">puts</span> 1\n</pre></td></tr></tbody></table></code></pre></figure>";
    assert_eq!(to_markdown(rouge).markdown, "```ruby\nputs 1\n```\n");
}

#[test]
fn code_blocks_with_markup_stay_html() {
    let converted = round_trip("<pre><code>see <a href=\"/x\">x</a></code></pre>");
    assert_eq!(kept(&converted), [("pre (with a inside)", 1)]);
}

#[test]
fn simple_tables_become_gfm() {
    converts(
        "<table><thead><tr><th align=\"left\">Name</th><th style=\"text-align: center\">A|B</th><th align=\"right\">n</th></tr></thead><tbody><tr><td><code>a|b</code></td><td><a href=\"/x\">x</a></td><td>1</td></tr><tr><td>only</td></tr></tbody></table>",
        "| Name | A\\|B | n |\n| :--- | :---: | ---: |\n| `a\\|b` | [x](/x) | 1 |\n| only |  |  |\n",
    );
    converts(
        "<table><tr><th>h</th></tr><tr><td><p>para</p></td></tr></table>",
        "| h |\n| --- |\n| para |\n",
    );
}

#[test]
fn tables_that_do_not_fit_stay_html() {
    for (html, why) in [
        (
            "<table><tr><th colspan=\"2\">h</th></tr><tr><td>a</td><td>b</td></tr></table>",
            "table (colspan)",
        ),
        (
            "<table><tr><td>no header</td></tr></table>",
            "table (no header row)",
        ),
        (
            "<table><caption>c</caption><tr><th>h</th></tr></table>",
            "table (caption)",
        ),
        (
            "<table><tr><th>h</th></tr><tr><td><ul><li>x</li></ul></td></tr></table>",
            "table (ul in a cell)",
        ),
    ] {
        let converted = round_trip(html);
        assert_eq!(kept(&converted), [(why, 1)], "{html}");
        assert!(
            converted.markdown.starts_with("<table>"),
            "{}",
            converted.markdown
        );
    }
}

#[test]
fn figures_become_image_and_italic_caption() {
    let converted = to_markdown(
        "<figure class=\"wp-block-image\"><a href=\"/full.jpg\"><img src=\"/cat.jpg\" alt=\"Cat\"></a><figcaption>A <strong>cat</strong>.</figcaption></figure>",
    );
    assert_eq!(
        converted.markdown,
        "[![Cat](/cat.jpg)](/full.jpg)\n\n*A **cat**.*\n"
    );
    assert!(converted.kept_as_html.is_empty());
    let rendered = render(&converted.markdown);
    assert!(
        rendered.contains("<em>A <strong>cat</strong>.</em>"),
        "{rendered}"
    );
    let converted = round_trip(
        "<figure><img src=\"a.png\"><img src=\"b.png\"><figcaption>Two</figcaption></figure>",
    );
    assert_eq!(kept(&converted), [("figure", 1)]);
    converts(
        "<figure><blockquote><p>q</p></blockquote></figure>",
        "> q\n",
    );
}

#[test]
fn entities_are_decoded_and_nbsp_kept() {
    converts(
        "<p>Tom &amp; Jerry&#8217;s &lt;tag&gt; a&nbsp;b &amp;amp; &copy;</p>",
        "Tom & Jerry\u{2019}s \\<tag> a\u{a0}b \\&amp; ©\n",
    );
}

#[test]
fn markdown_syntax_in_text_is_escaped() {
    converts(
        "<p>*not em* _nor_ [link](x) `code` \\ | ~x~ snake_case a--b wait... 2*3</p>",
        "\\*not em\\* \\_nor\\_ \\[link\\](x) \\`code\\` \\\\ \\| \\~x\\~ snake_case a-\\-b wait..\\. 2\\*3\n",
    );
    for line_start in [
        "# h",
        "> q",
        "- l",
        "+ l",
        "1. l",
        "2) l",
        "===",
        "---",
        "<div>",
        "    indented",
    ] {
        round_trip(&format!(
            "<p>{}</p>",
            line_start.replace('<', "&lt;").replace('>', "&gt;")
        ));
    }
    converts("<p>Wow!<a href=\"/x\">x</a></p>", "Wow\\![x](/x)\n");
}

#[test]
fn whitespace_collapses_as_a_browser_does() {
    converts(
        "<p>\n  lots   of\n\tspace <em> here </em> and <code>  c  </code>\n</p>",
        "lots of space *here* and `c `\n",
    );
    converts("<div>\n  <p>x</p>\n  \n  <p>y</p>\n</div>", "x\n\ny\n");
}

#[test]
fn wrappers_are_looked_through() {
    converts(
        "<section><div class=\"entry\"><p>one</p>loose <em>text</em><div>two</div></div></section>",
        "one\n\nloose *text*\n\ntwo\n",
    );
}

#[test]
fn embeds_and_scripts_stay_html_and_are_listed() {
    let converted = round_trip(
        "<p>before</p><iframe src=\"https://www.youtube.com/embed/x\" allowfullscreen></iframe><p>Watch: <video src=\"v.mp4\" controls></video></p><script>\nif (a < b) {\n\n  go();\n}\n</script><form action=\"/s\"><input name=\"q\"></form>",
    );
    assert_eq!(
        kept(&converted),
        [("iframe", 3), ("video", 5), ("script", 7), ("form", 13)]
    );
    assert!(
        converted.markdown.contains(
            "<iframe allowfullscreen=\"\" src=\"https://www.youtube.com/embed/x\"></iframe>"
        ),
        "{}",
        converted.markdown
    );
    assert!(
        converted
            .markdown
            .contains("<p>Watch: <video controls=\"\" src=\"v.mp4\"></video></p>"),
        "{}",
        converted.markdown
    );
}

#[test]
fn raw_blocks_have_no_blank_line_to_end_them_early() {
    let converted = round_trip(
        "<dl><dt>term</dt>\n\n<dd>text\n\n\nmore *not em*</dd></dl><details><summary>s</summary><pre>a\n\n\nb</pre></details>",
    );
    assert!(!converted.markdown.trim().contains("\n\n\n"));
    assert_eq!(kept(&converted), [("dl", 1), ("details", 5)]);
}

#[test]
fn raw_blocks_inside_containers_land_on_their_lines() {
    let converted = round_trip(
        "<ul><li>a</li><li><p>b</p><iframe src=\"/e\"></iframe></li></ul><blockquote><p>q</p><video src=\"v\"></video></blockquote>",
    );
    let lines: Vec<&str> = converted.markdown.lines().collect();
    for kept in &converted.kept_as_html {
        assert!(
            lines[kept.line - 1].contains(&format!("<{}", kept.element)),
            "{kept:?}\n{}",
            converted.markdown
        );
    }
    assert_eq!(converted.kept_as_html.len(), 2);
}

#[test]
fn comments_are_dropped() {
    converts(
        "<!-- wp:paragraph --><p>kept<!-- inline --> text</p><!-- /wp:paragraph -->",
        "kept text\n",
    );
}

#[test]
fn every_image_is_listed_even_inside_raw_html() {
    let converted = to_markdown(
        "<p><img src=\"a.png\"></p><table><tr><td><img src=\"b.png\"></td></tr></table><picture><source srcset=\"c.webp\"><img src=\"c.png\"></picture><img alt=\"no src\">",
    );
    assert_eq!(converted.images, ["a.png", "b.png", "c.png"]);
}

#[test]
fn passthrough_inline_elements_keep_markdown_inside() {
    converts(
        "<p>H<sub>2</sub>O and x<sup>2</sup>, <kbd>Ctrl</kbd>+<kbd>C</kbd>, <abbr title=\"HyperText\">HTML</abbr> <mark><em>hi</em></mark></p>",
        "H<sub>2</sub>O and x<sup>2</sup>, <kbd>Ctrl</kbd>+<kbd>C</kbd>, <abbr title=\"HyperText\">HTML</abbr> <mark>*hi*</mark>\n",
    );
}

#[test]
fn empty_input_is_empty_markdown() {
    for html in [
        "",
        "   ",
        "<!-- only -->",
        "<p> </p>",
        "<div><span></span></div>",
    ] {
        let converted = to_markdown(html);
        assert_eq!(converted.markdown, "", "{html}");
        assert!(converted.kept_as_html.is_empty());
    }
}

#[test]
fn quire_renders_the_code_language() {
    let converted = to_markdown("<pre><code class=\"language-python\">print(1)\n</code></pre>");
    let urls = std::collections::HashMap::new();
    let links = crate::site::markdown::Links {
        source_dir: "posts",
        page_urls: &urls,
    };
    let rendered = crate::site::markdown::render(&converted.markdown, 1, &links);
    assert!(
        rendered.html.contains("data-lang=\"python\""),
        "{}",
        rendered.html
    );
}
