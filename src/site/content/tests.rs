//! Loading content/ from temporary folders: posts, pages, assets and tags;
//! drafts and scheduling; every problem of a broken file; unreadable folders.

use super::*;

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn fresh(content: &Path) -> Folders<'_> {
    Folders {
        content,
        data: Path::new("/nonexistent"),
        previous: None,
    }
}

fn default_post_url() -> PostUrl {
    PostUrl::parse("/posts/{slug}/").unwrap()
}

fn visibility(now: &str) -> Visibility {
    Visibility {
        now: now.parse().unwrap(),
        drafts: false,
    }
}

#[test]
fn posts_pages_assets_and_tags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "posts/2026-01-02-second.md",
        "+++\ntitle = \"Second\"\ntags = [\"Rust\", \"meta\"]\n+++\nSee [first](2026-01-01-first.md).\n",
    );
    write(
        d,
        "posts/2026-01-01-first.md",
        "---\ntitle: First\ntags: [rust]\n---\nHello\n",
    );
    write(d, "about.md", "+++\ntitle = \"About\"\n+++\nMe\n");
    write(d, "docs/index.md", "+++\ntitle = \"Docs\"\n+++\n");
    write(d, "images/cat.png", "png");
    write(d, "posts/.hidden.md", "junk");
    let lib = load(
        &fresh(d),
        &default_post_url(),
        &visibility("2026-06-01T00:00:00Z"),
    );
    assert!(lib.problems.is_empty(), "{:?}", lib.problems);
    let urls: Vec<_> = lib.posts.iter().map(|p| p.url.as_str()).collect();
    assert_eq!(urls, ["/posts/second/", "/posts/first/"]);
    assert!(lib.posts[0].body.html.contains("href=\"/posts/first/\""));
    let pages: Vec<_> = lib.pages.iter().map(|p| p.url.as_str()).collect();
    assert_eq!(pages, ["/about/", "/docs/"]);
    assert_eq!(lib.assets[0].url, "/images/cat.png");
    let (tag, posts) = &lib.tags["rust"];
    assert_eq!(tag.name, "Rust");
    assert_eq!(posts, &[0, 1]);
}

#[test]
fn drafts_and_scheduled_posts_are_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "posts/2026-01-01-draft.md",
        "+++\ntitle = \"D\"\ndraft = true\n+++\n",
    );
    write(d, "posts/2026-09-01-later.md", "+++\ntitle = \"L\"\n+++\n");
    write(d, "posts/2026-08-01-soon.md", "+++\ntitle = \"S\"\n+++\n");
    let lib = load(
        &fresh(d),
        &default_post_url(),
        &visibility("2026-06-01T00:00:00Z"),
    );
    assert!(lib.posts.is_empty());
    assert_eq!(
        lib.next_publish.unwrap().to_rfc3339(),
        "2026-08-01T00:00:00+00:00"
    );
    let lib = load(
        &fresh(d),
        &default_post_url(),
        &Visibility {
            now: "2026-08-01T00:00:00Z".parse().unwrap(),
            drafts: true,
        },
    );
    let titles: Vec<_> = lib.posts.iter().map(|p| p.title.as_str()).collect();
    assert_eq!(titles, ["S", "D"]);
}

#[test]
fn broken_and_duplicate_files_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "posts/2026-01-01-a.md", "+++\ntitle = \"A\"\n+++\n");
    write(
        d,
        "posts/2026-01-02-b.md",
        "+++\ntitle = \"B\"\nslug = \"a\"\n+++\n",
    );
    write(
        d,
        "posts/2026-01-03-c.md",
        "+++\ntitle = \"C\"\ndate = \"soon\"\n+++\n",
    );
    write(d, "posts/nodate.md", "+++\ntitle = \"N\"\n+++\n");
    let lib = load(
        &fresh(d),
        &default_post_url(),
        &visibility("2026-06-01T00:00:00Z"),
    );
    assert_eq!(lib.posts.len(), 1);
    let mut found: Vec<String> = lib
        .problems
        .iter()
        .map(|p| {
            format!(
                "{}:{}",
                p.file.file_name().unwrap().to_string_lossy(),
                p.line
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        ["2026-01-02-b.md:1", "2026-01-03-c.md:3", "nodate.md:2"]
    );
    assert!(
        lib.problems
            .iter()
            .any(|p| p.message.contains("duplicate URL: /posts/a/ is the URL of both content/posts/2026-01-01-a.md and content/posts/2026-01-02-b.md; set `slug` or `path`"))
    );
}

#[test]
fn every_problem_of_a_file_is_reported_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "posts/undated.md",
        "+++\ntitle = \"U\"\ndate = \"soon\"\nslug = \"Not A Slug\"\naliases = [\"old/\", \"/fine/\", \"/a/../b/\"]\n+++\n",
    );
    let lib = load(
        &fresh(d),
        &default_post_url(),
        &visibility("2026-06-01T00:00:00Z"),
    );
    assert!(lib.posts.is_empty());
    let found: Vec<(usize, &str)> = lib
        .problems
        .iter()
        .map(|p| (p.line, p.message.as_str()))
        .collect();
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(
        found[0].0 == 3 && found[0].1.contains("`soon`"),
        "{found:#?}"
    );
    assert!(
        found[1].0 == 4 && found[1].1.contains("not-a-slug"),
        "{found:#?}"
    );
    assert!(
        found[2].0 == 5 && found[2].1.contains("`old/`"),
        "{found:#?}"
    );
    assert!(
        found[3].0 == 5 && found[3].1.contains("`/a/../b/`"),
        "{found:#?}"
    );
    assert!(
        !found.iter().any(|(_, m)| m.contains("has no date")),
        "the date it has was refused; it is not missing: {found:#?}"
    );
}

#[test]
fn files_of_an_unreadable_folder_keep_their_previous_text() {
    let content = Path::new("/site/content");
    let previous: HashMap<PathBuf, Arc<str>> = [
        ("/site/content/posts/b.md", "B"),
        ("/site/content/posts/a.md", "A"),
        ("/site/content/c.md", "C"),
    ]
    .into_iter()
    .map(|(path, text)| (PathBuf::from(path), Arc::from(text)))
    .collect();
    let listing = Listing {
        files: Vec::new(),
        unreadable: vec![content.join("posts")],
    };
    let mut sources = vec![Source {
        rel: "z.md".into(),
        path: content.join("z.md"),
        text: Arc::from("Z"),
    }];
    let folders = Folders {
        content,
        data: Path::new("/site/data"),
        previous: Some(&previous),
    };
    keep_hidden(&folders, &listing, &HashSet::new(), &mut sources);
    let kept: Vec<(&str, &str)> = sources.iter().map(|s| (s.rel.as_str(), &*s.text)).collect();
    assert_eq!(
        kept,
        [("posts/a.md", "A"), ("posts/b.md", "B"), ("z.md", "Z")]
    );
}

#[test]
fn date_prefix_parsing() {
    assert_eq!(
        date_prefix("2026-01-02-hello"),
        Some((NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(), "hello"))
    );
    assert_eq!(date_prefix("hello"), None);
    assert_eq!(date_prefix("2026-13-02-x"), None);
}

/// Every post's URL (the href) by title.
fn urls(lib: &Library) -> Vec<(String, String)> {
    let mut urls: Vec<(String, String)> = lib
        .posts
        .iter()
        .chain(&lib.pages)
        .map(|p| (p.title.clone(), p.url.clone()))
        .collect();
    urls.sort();
    urls
}

#[test]
fn slugs_patterns_paths_and_bundles_decide_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "posts/2019-05-01-my_post.md",
        "+++\ntitle = \"A\"\n+++\n",
    );
    write(
        d,
        "posts/2019-05-02-CamelCase.md",
        "+++\ntitle = \"B\"\n+++\n",
    );
    write(
        d,
        "posts/2019-05-03-x.md",
        "+++\ntitle = \"C\"\nslug = \"café\"\n+++\n",
    );
    write(
        d,
        "posts/2019-05-04-y.md",
        "+++\ntitle = \"D\"\npath = \"/old/d.html\"\naliases = [\"/d%C3%A9j%C3%A0/\"]\n+++\n",
    );
    write(
        d,
        "posts/2019-06-01-trip/index.md",
        "+++\ntitle = \"E\"\n+++\n![view](view.jpg)\n",
    );
    write(d, "posts/2019-06-01-trip/view.jpg", "jpg");
    write(
        d,
        "posts/My Post!.md",
        "+++\ntitle = \"F\"\ndate = 2019-07-01\n+++\n",
    );
    write(d, "Docs/Set_Up.md", "+++\ntitle = \"G\"\n+++\n");
    write(
        d,
        "index.md",
        "+++\ntitle = \"H\"\npath = \"/start/\"\n+++\n",
    );
    let pattern = PostUrl::parse("/{year}/{month}/{slug}.html").unwrap();
    let lib = load(&fresh(d), &pattern, &visibility("2026-06-01T00:00:00Z"));
    assert!(lib.problems.is_empty(), "{:?}", lib.problems);
    let expect = [
        ("A", "/2019/05/my_post.html"),
        ("B", "/2019/05/CamelCase.html"),
        ("C", "/2019/05/caf%C3%A9.html"),
        ("D", "/old/d.html"),
        ("E", "/2019/06/trip.html"),
        ("F", "/2019/07/my-post.html"),
        ("G", "/Docs/Set_Up/"),
        ("H", "/start/"),
    ];
    let expect: Vec<(String, String)> = expect
        .iter()
        .map(|(t, u)| (t.to_string(), u.to_string()))
        .collect();
    assert_eq!(urls(&lib), expect);
    let c = lib.posts.iter().find(|p| p.title == "C").unwrap();
    assert_eq!(c.route, "/2019/05/café.html");
    let d_post = lib.posts.iter().find(|p| p.title == "D").unwrap();
    assert_eq!(d_post.aliases, ["/déjà/"]);
    // The bundle's image resolves to the bundle's folder, not the post's URL.
    let e = lib.posts.iter().find(|p| p.title == "E").unwrap();
    assert!(
        e.body
            .html
            .contains("src=\"/posts/2019-06-01-trip/view.jpg\""),
        "{}",
        e.body.html
    );
    assert!(
        lib.assets
            .iter()
            .any(|a| a.url == "/posts/2019-06-01-trip/view.jpg")
    );
}

#[test]
fn refused_slugs_and_paths_are_located_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "posts/2019-05-01-ok.md", "+++\ntitle = \"Ok\"\n+++\n");
    write(
        d,
        "posts/2019-05-02-a.md",
        "+++\ntitle = \"A\"\nslug = \"a/b\"\n+++\n",
    );
    write(
        d,
        "posts/2019-05-03-b.md",
        "+++\ntitle = \"B\"\n\npath = \"blog/x/\"\n+++\n",
    );
    write(
        d,
        "posts/2019-05-04-c.md",
        "+++\ntitle = \"C\"\npath = \"/\"\n+++\n",
    );
    let lib = load(
        &fresh(d),
        &default_post_url(),
        &visibility("2026-06-01T00:00:00Z"),
    );
    assert_eq!(lib.posts.len(), 1);
    let mut found: Vec<String> = lib
        .problems
        .iter()
        .map(|p| {
            format!(
                "{}:{}: {}",
                p.file.file_name().unwrap().to_string_lossy(),
                p.line,
                p.message
            )
        })
        .collect();
    found.sort();
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        found[0].starts_with("2019-05-02-a.md:3: slug `a/b` contains `/`"),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with("2019-05-03-b.md:4: path `blog/x/` is not absolute"),
        "{found:#?}"
    );
    assert!(
        found[2].starts_with("2019-05-04-c.md:3: path `/` is the home page"),
        "{found:#?}"
    );
}
