//! What the site folders publish: symbolic links that leave content/ or
//! static/ and quire's own data directory never are; a file or folder that
//! cannot be read keeps its last version served and is reported as a
//! permission problem.

use std::os::unix::fs::symlink;

use crate::support::{Binary, SiteDir, chmod, eventually, get, post, wait_for_log};

#[tokio::test]
async fn links_out_of_content_and_static_are_refused() {
    let site = SiteDir::empty("[paths]\ndata = \"content/private\"\n");
    site.write(
        "content/posts/2026-01-01-first.md",
        &post("First", "2026-01-01", "", "Hello."),
    );
    site.write("content/notes.txt", "notes");
    site.write("secret.txt", "the site folder's secret");
    site.write("content/private/planted.key", "a key in the data directory");
    symlink("/etc/passwd", site.path("content/leak.txt")).unwrap();
    symlink("/etc", site.path("content/etc")).unwrap();
    symlink("../secret.txt", site.path("static/secret.txt")).unwrap();
    symlink("private/planted.key", site.path("content/key.txt")).unwrap();
    // Inside the root: followed, and a link back up is not walked round and round.
    symlink("notes.txt", site.path("content/same.txt")).unwrap();
    symlink("..", site.path("content/posts/up")).unwrap();

    let server = Binary::serve(&site, &[]);
    for path in [
        "/leak.txt",
        "/etc/passwd",
        "/etc/hostname",
        "/secret.txt",
        "/key.txt",
        "/private/planted.key",
    ] {
        let reply = get(server.addr, path).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text());
    }
    assert_eq!(get(server.addr, "/same.txt").await.text(), "notes");
    assert_eq!(get(server.addr, "/posts/first/").await.status, 200);
    wait_for_log(&server, "leak.txt: a symbolic link to /etc/passwd");

    // A link added while serving is refused too.
    symlink("/etc/passwd", site.path("content/later.txt")).unwrap();
    wait_for_log(&server, "later.txt: a symbolic link to /etc/passwd");
    assert_eq!(get(server.addr, "/later.txt").await.status, 404);
    drop(server);

    let (code, out, _) = site.run(&["check", "--config", "quire.toml"]);
    assert_eq!(code, 1, "{out}");
    // `check` runs in the site folder, so it names files relative to it.
    let secret = site.path("secret.txt").canonicalize().unwrap();
    for expected in [
        "content/leak.txt: a symbolic link to /etc/passwd, outside content; quire does not publish it: copy the file in instead".to_string(),
        "content/etc: a symbolic link to /etc, outside content".into(),
        format!("static/secret.txt: a symbolic link to {}, outside static", secret.display()),
        "content/key.txt: a symbolic link into quire's data directory".into(),
        "content/private: quire's data directory is never published".into(),
        "content/posts/up: a symbolic link back to content, which would loop".into(),
    ] {
        assert!(out.contains(&expected), "`{expected}` not in:\n{out}");
    }
    assert!(
        !out.contains("same.txt"),
        "a link inside content/ is fine:\n{out}"
    );
}

#[tokio::test]
async fn unreadable_files_and_folders_keep_their_last_version() {
    let site = SiteDir::empty("");
    site.write(
        "content/posts/2026-01-01-first.md",
        &post("First", "2026-01-01", "", "Hello."),
    );
    site.write(
        "content/posts/2026-01-02-second.md",
        &post("Second", "2026-01-02", "", "The second post."),
    );
    site.write(
        "content/posts/2026-01-03-locked.md",
        &post("Locked", "2026-01-03", "", "Never readable."),
    );
    site.write("static/extra.css", "body { color: red; }");
    chmod(&site, "content/posts/2026-01-03-locked.md", 0o000);
    let server = Binary::serve_unprivileged(&site, &[]);
    let addr = server.addr;

    // At start there is no earlier version: that post is missing, the rest serves.
    let locked = site.path("content/posts/2026-01-03-locked.md");
    wait_for_log(
        &server,
        &format!(
            "{}: permission denied: quire runs as user ",
            locked.display()
        ),
    );
    wait_for_log(&server, &format!("chmod a+r {}", locked.display()));
    assert_eq!(get(addr, "/posts/locked/").await.status, 404);
    assert_eq!(get(addr, "/posts/first/").await.status, 200);

    // A rebuild swaps the new version in before it logs, so once the
    // problem is logged, what is served is what that build made.
    let denied = "permission denied: quire runs as user";
    chmod(&site, "content/posts/2026-01-02-second.md", 0o000);
    chmod(&site, "static/extra.css", 0o000);
    wait_for_log(
        &server,
        &format!(
            "{}: {denied}",
            site.path("content/posts/2026-01-02-second.md").display()
        ),
    );
    wait_for_log(
        &server,
        &format!("{}: {denied}", site.path("static/extra.css").display()),
    );
    let second = get(addr, "/posts/second/").await;
    assert_eq!(second.status, 200, "the last good version serves");
    assert!(second.text().contains("The second post."));
    assert_eq!(get(addr, "/extra.css").await.text(), "body { color: red; }");
    assert!(get(addr, "/").await.text().contains("/posts/second/"));
    let log = server.log();
    assert!(!log.contains("UTF-8"), "not an encoding problem:\n{log}");
    let dashboard = get(server.metrics.unwrap(), "/").await.text();
    assert!(
        dashboard.contains("2026-01-02-second.md: permission denied"),
        "{dashboard}"
    );

    // Readable again: edits are picked up as before.
    chmod(&site, "content/posts/2026-01-02-second.md", 0o644);
    site.write(
        "content/posts/2026-01-02-second.md",
        &post("Second", "2026-01-02", "", "Edited."),
    );
    eventually("the edit is served", || async {
        get(addr, "/posts/second/").await.text().contains("Edited.")
    })
    .await;

    // A folder that cannot be listed does not unpublish the site.
    chmod(&site, "content", 0o000);
    wait_for_log(
        &server,
        &format!("{}: {denied}", site.path("content").display()),
    );
    for path in ["/posts/first/", "/posts/second/"] {
        assert_eq!(get(addr, path).await.status, 200, "{path}");
    }
    assert!(get(addr, "/").await.text().contains("/posts/first/"));
    chmod(&site, "content", 0o755);
}
