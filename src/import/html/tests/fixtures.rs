//! Realistic bodies as the big engines write them, converted whole: the round
//! trip holds, code keeps its language, and what stays HTML is listed.

use super::{Item, digest, kept, render, round_trip, to_markdown};

const WORDPRESS: &str = r#"<!-- wp:paragraph -->
<p>WordPress&#8217;s editor writes <strong>blocks</strong> &amp; comments. Here&#8217;s a <a href="https://example.com/2019/05/01/older-post/">link to an older post</a>.</p>
<!-- /wp:paragraph -->

<!-- wp:image {"id":12,"sizeSlug":"large"} -->
<figure class="wp-block-image size-large"><img src="https://example.com/wp-content/uploads/2019/05/cat-1024x768.jpg" alt="A cat" class="wp-image-12"/><figcaption>The cat, <em>asleep</em></figcaption></figure>
<!-- /wp:image -->

<!-- wp:code -->
<pre class="wp-block-code"><code class="language-php">&lt;?php
echo "Hello &amp; goodbye";
</code></pre>
<!-- /wp:code -->

<!-- wp:table -->
<figure class="wp-block-table"><table><thead><tr><th>Plan</th><th>Price</th></tr></thead><tbody><tr><td>Free</td><td>$0</td></tr><tr><td>Pro</td><td>$5</td></tr></tbody></table></figure>
<!-- /wp:table -->

<!-- wp:embed {"url":"https://www.youtube.com/watch?v=x"} -->
<figure class="wp-block-embed is-type-video"><div class="wp-block-embed__wrapper">
<iframe title="Video" width="500" height="281" src="https://www.youtube.com/embed/x?feature=oembed" frameborder="0" allowfullscreen></iframe>
</div></figure>
<!-- /wp:embed -->

<p>&nbsp;</p>
<ul><li>One</li><li>Two &#8211; with a dash</li></ul>"#;

const HUGO: &str = r##"<p>Hugo renders markdown with goldmark, so headings get ids.</p>
<h2 id="setting-up">Setting up</h2>
<p>Install it<sup id="fnref:1"><a href="#fn:1" class="footnote-ref" role="doc-noteref">1</a></sup> and run:</p>
<div class="highlight"><pre tabindex="0" style="color:#f8f8f2;background-color:#272822;" class="chroma"><code class="language-go" data-lang="go"><span style="display:flex;"><span><span style="color:#f92672">package</span> <span style="color:#a6e22e">main</span>
</span></span><span style="display:flex;"><span>
</span></span><span style="display:flex;"><span><span style="color:#66d9ef">func</span> <span style="color:#a6e22e">main</span>() { <span style="color:#a6e22e">println</span>(<span style="color:#e6db74">&#34;hi `there`&#34;</span>) }
</span></span></code></pre></div><blockquote>
<p>A quote with <code>code</code>.</p>
</blockquote>
<table>
<thead>
<tr>
<th style="text-align:left">Key</th>
<th style="text-align:right">Value</th>
</tr>
</thead>
<tbody>
<tr>
<td style="text-align:left">a</td>
<td style="text-align:right">1</td>
</tr>
</tbody>
</table>
<p><img src="/images/diagram.png" alt="Diagram"></p>
<div class="footnotes" role="doc-endnotes">
<hr>
<ol>
<li id="fn:1">
<p>From the website.&#160;<a href="#fnref:1" class="footnote-backref" role="doc-backlink">&#x21a9;&#xfe0e;</a></p>
</li>
</ol>
</div>"##;

const JEKYLL: &str = r#"<p>Jekyll uses kramdown and rouge.</p>

<h2 id="the-code">The code</h2>

<div class="language-ruby highlighter-rouge"><div class="highlight"><pre class="highlight"><code><span class="k">def</span> <span class="nf">hello</span>
  <span class="nb">puts</span> <span class="s2">"hello"</span>
<span class="k">end</span>
</code></pre></div></div>

<ol>
  <li>First</li>
  <li>Second with <em>emphasis</em></li>
</ol>

<div class="language-plaintext highlighter-rouge"><div class="highlight"><pre class="highlight"><code>plain text
</code></pre></div></div>

<p>A <a href="/2018/01/01/other.html" title="Other">relative link</a>.</p>"#;

const GHOST: &str = r#"<p>Ghost cards are <em>figures</em>.</p><figure class="kg-card kg-image-card kg-card-hascaption"><img src="https://blog.example/content/images/2021/03/photo.jpg" class="kg-image" alt="Photo" loading="lazy" width="2000" height="1333" srcset="https://blog.example/content/images/size/w600/2021/03/photo.jpg 600w"><figcaption>Photo by <a href="https://unsplash.com/@someone">Someone</a></figcaption></figure><pre><code class="language-javascript">const x = `template ${y}`;
</code></pre><figure class="kg-card kg-bookmark-card"><a class="kg-bookmark-container" href="https://example.org/"><div class="kg-bookmark-content"><div class="kg-bookmark-title">Example</div><div class="kg-bookmark-description">An example site</div></div><div class="kg-bookmark-thumbnail"><img src="https://example.org/thumb.png" alt=""></div></a></figure><hr><blockquote>Quoted without a paragraph.</blockquote><h3 id="a-heading">A heading</h3><p>Last line.</p>"#;

#[test]
fn wordpress_post() {
    let converted = to_markdown(WORDPRESS);
    let markdown = &converted.markdown;
    assert!(
        markdown.starts_with("WordPress\u{2019}s editor writes **blocks** & comments."),
        "{markdown}"
    );
    assert!(
        markdown.contains("[link to an older post](https://example.com/2019/05/01/older-post/)")
    );
    assert!(markdown.contains("![A cat](https://example.com/wp-content/uploads/2019/05/cat-1024x768.jpg)\n\n<em>The cat, *asleep*</em>"), "{markdown}");
    assert!(
        markdown.contains("```php\n<?php\necho \"Hello & goodbye\";\n```"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| Plan | Price |\n| --- | --- |\n| Free | $0 |\n| Pro | $5 |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("- One\n- Two \u{2013} with a dash"),
        "{markdown}"
    );
    assert!(
        !markdown.contains("wp:"),
        "comments are dropped: {markdown}"
    );
    assert_eq!(
        converted.images,
        ["https://example.com/wp-content/uploads/2019/05/cat-1024x768.jpg"]
    );
    let kept: Vec<_> = converted
        .kept_as_html
        .iter()
        .map(|k| k.element.as_str())
        .collect();
    assert_eq!(kept, ["iframe"]);
    // The figure becomes two paragraphs, so compare what it keeps.
    let rendered = digest(&render(markdown));
    assert!(rendered.contains(&Item::Image {
        src: "https://example.com/wp-content/uploads/2019/05/cat-1024x768.jpg".into(),
        alt: "A cat".into()
    }));
    assert!(rendered.contains(&Item::Text("The cat, asleep".into())));
    assert!(rendered.contains(&Item::CodeBlock {
        language: Some("php".into()),
        text: "<?php\necho \"Hello & goodbye\";".into()
    }));
    assert!(rendered.contains(&Item::Element("iframe".into())));
    assert!(rendered.contains(&Item::Text("\u{a0}".into())));
}

#[test]
fn hugo_post() {
    let converted = round_trip(HUGO);
    let markdown = &converted.markdown;
    assert!(markdown.contains("## Setting up\n"), "{markdown}");
    assert!(
        markdown.contains("Install it<sup id=\"fnref:1\">[1](#fn:1)</sup> and run:"),
        "{markdown}"
    );
    assert!(
        markdown.contains("```go\npackage main\n\nfunc main() { println(\"hi `there`\") }\n```"),
        "{markdown}"
    );
    assert!(markdown.contains("| :--- | ---: |"), "{markdown}");
    assert!(
        converted.kept_as_html.is_empty(),
        "{:?}",
        converted.kept_as_html
    );
    assert_eq!(converted.images, ["/images/diagram.png"]);
}

#[test]
fn jekyll_post() {
    let converted = to_markdown(JEKYLL);
    let markdown = &converted.markdown;
    assert!(
        markdown.contains("```ruby\ndef hello\n  puts \"hello\"\nend\n```"),
        "{markdown}"
    );
    assert!(
        markdown.contains("```plaintext\nplain text\n```"),
        "{markdown}"
    );
    assert!(
        markdown.contains("1. First\n2. Second with *emphasis*"),
        "{markdown}"
    );
    assert!(
        markdown.contains("[relative link](/2018/01/01/other.html \"Other\")"),
        "{markdown}"
    );
    assert!(converted.kept_as_html.is_empty());
    let rendered = digest(&render(markdown));
    let code: Vec<_> = rendered
        .iter()
        .filter_map(|item| match item {
            Item::CodeBlock { language, .. } => language.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(code, ["ruby", "plaintext"]);
    round_trip(JEKYLL);
}

#[test]
fn ghost_post() {
    let converted = to_markdown(GHOST);
    let markdown = &converted.markdown;
    assert!(markdown.contains("![Photo](https://blog.example/content/images/2021/03/photo.jpg)\n\n*Photo by [Someone](https://unsplash.com/@someone)*"), "{markdown}");
    assert!(
        markdown.contains("```javascript\nconst x = `template ${y}`;\n```"),
        "{markdown}"
    );
    assert!(
        markdown.contains("> Quoted without a paragraph."),
        "{markdown}"
    );
    assert_eq!(
        kept(&converted).iter().map(|k| k.0).collect::<Vec<_>>(),
        ["div"]
    );
    assert_eq!(
        converted.images,
        [
            "https://blog.example/content/images/2021/03/photo.jpg",
            "https://example.org/thumb.png"
        ]
    );
    let line = converted.kept_as_html[0].line;
    assert!(
        markdown
            .lines()
            .nth(line - 1)
            .unwrap()
            .contains("kg-bookmark-container")
    );
    let rendered = digest(&render(markdown));
    assert!(rendered.contains(&Item::Link("https://example.org/".into())));
    assert!(rendered.contains(&Item::Text("Example".into())));
}
