//! The commands as a user runs them: check, new, and serve's start-up errors.

use crate::support::{Binary, SiteDir, local_site, post, request, wait_for_log};

#[test]
fn check_passes_on_the_example_site() {
    let site = SiteDir::example("");
    let (code, stdout, stderr) = site.run(&["check", "--config", "quire.toml"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("checked 6 posts, 2 pages"), "{stderr}");
}

#[test]
fn check_lists_every_problem_with_file_and_line() {
    let site = SiteDir::empty("");
    site.write(
        "content/posts/2026-01-01-good.md",
        &post(
            "Good",
            "2026-01-01",
            "",
            "Fine.\n\n[dangling](/no/such/page/)\n\n![gone](missing.png)",
        ),
    );
    site.write(
        "content/posts/2026-01-02-broken.md",
        "+++\ntitle = \"Broken\"\ndate = \"last tuesday\"\n+++\n",
    );
    site.write(
        "content/posts/2026-01-03-dup.md",
        &post("Dup", "2026-01-03", "slug = \"good\"\n", "Same slug."),
    );
    site.write(
        "content/posts/2026-01-04-link.md",
        &post("Link", "2026-01-04", "", "See\n[this](2026-01-01-nope.md)."),
    );
    site.write(
        "content/posts/2026-01-05-yaml.md",
        "---\ntitle: Yaml\ntitel: typo\n---\n",
    );
    let (code, stdout, _) = site.run(&["check", "--config", "quire.toml"]);
    assert_eq!(code, 1, "{stdout}");
    let expect = [
        ("2026-01-01-good.md:8:", "goes nowhere"),
        (
            "2026-01-01-good.md:10:",
            "image /posts/missing.png does not exist",
        ),
        ("2026-01-02-broken.md:3:", "2026-03-14"),
        ("2026-01-03-dup.md:1:", "duplicate URL"),
        (
            "2026-01-04-link.md:7:",
            "content/posts/2026-01-01-nope.md does not exist",
        ),
        ("2026-01-05-yaml.md:3:", "titel"),
    ];
    for (location, what) in expect {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(location) && l.contains(what)),
            "expected `{location} ... {what}` in:\n{stdout}"
        );
    }
    assert_eq!(stdout.lines().count(), expect.len(), "{stdout}");
}

#[test]
fn check_reports_config_problems_with_lines() {
    let site = SiteDir::empty("");
    std::fs::write(
        site.config(),
        "[site]\nbase_url = \"blog.example.com\"\nposts_per_page = 0\n[stats]\ndaily_retention_days = 0\n[listen]\nhttp = \"127.0.0.1:99999\"\n",
    )
    .unwrap();
    let (code, stdout, _) = site.run(&["check", "--config", "quire.toml"]);
    assert_eq!(code, 1);
    for needle in [
        "quire.toml:2: site.base_url",
        "quire.toml:3: site.posts_per_page",
        "quire.toml:5: stats.daily_retention_days",
        "quire.toml:7: listen.http",
    ] {
        assert!(stdout.contains(needle), "{needle} in:\n{stdout}");
    }
    // Unknown keys and tables, and values of the wrong type, all in one run.
    std::fs::write(
        site.config(),
        "[site]\ntitle = \"x\"\ntitel = \"y\"\n[sight]\nauthor = \"z\"\n[stats]\nenabled = \"yes\"\n",
    )
    .unwrap();
    let (code, stdout, _) = site.run(&["check", "--config", "quire.toml"]);
    assert_eq!(code, 1);
    for needle in [
        "quire.toml:3: site: unknown key `titel`; [site] takes title, base_url,",
        "quire.toml:4: sight: unknown section `sight`; use [site], [domains],",
        "quire.toml:7: stats.enabled: \"yes\" is text in quotes; use true or false",
    ] {
        assert!(stdout.contains(needle), "{needle} in:\n{stdout}");
    }
}

#[test]
fn new_writes_a_draft_that_check_accepts() {
    let site = SiteDir::empty("");
    let (code, stdout, stderr) = site.run(&["new", "My First Post!", "--config", "quire.toml"]);
    assert_eq!(code, 0, "{stderr}");
    let path = site.dir.path().join(stdout.trim());
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        name.ends_with("-my-first-post.md") && name.len() == "2026-01-01-my-first-post.md".len(),
        "{name}"
    );
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("draft = true")
    );
    let (code, _, stderr) = site.run(&["check", "--config", "quire.toml", "--drafts"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("checked 1 posts"), "{stderr}");
    let (code, _, stderr) = site.run(&["new", "My First Post!", "--config", "quire.toml"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("already exists"), "{stderr}");
}

#[test]
fn serve_explains_a_bad_config_and_a_taken_port() {
    let site = SiteDir::empty("");
    std::fs::write(
        site.config(),
        "[listen]\nhttp = \"nonsense\"\n[tls]\nmode = \"off\"\n",
    )
    .unwrap();
    let (code, _, stderr) = site.run(&["serve", "--config", "quire.toml"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("quire.toml:2: listen.http"), "{stderr}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::fs::write(
        site.config(),
        format!("[listen]\nhttp = \"127.0.0.1:{port}\"\nmetrics = \"127.0.0.1:0\"\n[tls]\nmode = \"off\"\n"),
    )
    .unwrap();
    let (code, _, stderr) = site.run(&["serve", "--config", "quire.toml"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("another process already listens"),
        "{stderr}"
    );

    let (code, _, stderr) = site.run(&["serve", "--config", "quire.toml", "--mode", "sideways"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown mode `sideways`"), "{stderr}");
}

#[test]
fn a_taken_port_says_where_it_was_set_and_how_to_choose_another() {
    let site = SiteDir::empty("");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let (code, _, stderr) = site.run(&["serve", "--config", "quire.toml", "--http", &addr]);
    assert_eq!(code, 1, "{stderr}");
    let next = format!("127.0.0.1:{}", port + 1);
    assert!(
        stderr.contains(&format!(
            "error: {addr}, the http address set by --http, is taken by another process; stop that process, or choose a free address with `quire serve --http {next}`, QUIRE_HTTP={next} or [listen] http in the config file"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("because: cannot listen on") && stderr.contains("already listens"),
        "the listener's own explanation follows: {stderr}"
    );
}

#[tokio::test]
async fn serve_takes_its_addresses_from_flags_over_variables_over_the_file() {
    // Every address the file and the variables name is taken: only the
    // flags' (and QUIRE_METRICS's) can be the ones served.
    let taken: Vec<std::net::TcpListener> = (0..4)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let at = |i: usize| taken[i].local_addr().unwrap().to_string();
    let site = local_site("");
    std::fs::write(
        site.config(),
        format!(
            "[listen]\nhttp = \"{}\"\nhttps = \"{}\"\nmetrics = \"{}\"\nlocal_ca = \"127.0.0.1:0\"\n\n[tls]\nmode = \"local\"\n",
            at(0),
            at(1),
            at(2)
        ),
    )
    .unwrap();
    let server = Binary::serve_with_env(
        &site,
        &["--http", "127.0.0.1:0", "--https", "127.0.0.1:0"],
        &[("QUIRE_HTTP", &at(3)), ("QUIRE_METRICS", "127.0.0.1:0")],
    );
    let served = [server.addr, server.https.unwrap(), server.metrics.unwrap()];
    for addr in served {
        assert!(
            !taken.iter().any(|t| t.local_addr().unwrap() == addr),
            "{addr} is one of the taken addresses"
        );
    }
    let health = request(server.metrics.unwrap(), "GET", "/health", &[]).await;
    assert_eq!(health.status, 200);
    assert_eq!(server.terminate(), 0);
}

#[test]
fn the_log_writes_time_as_people_read_it_everywhere_else() {
    let site = SiteDir::empty("");
    let server = Binary::serve(&site, &[]);
    // The harness reads the log on a thread of its own: being ready does not
    // mean the start-up lines have been read yet.
    wait_for_log(&server, "recorded the served URLs");
    let log = server.log();
    for line in log.lines() {
        let stamp = line.get(..23).unwrap_or(line);
        assert!(
            chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S UTC").is_ok(),
            "`{stamp}` is not `2027-02-27 14:13:05 UTC`: {line}"
        );
    }
}

#[test]
fn serve_without_content_says_what_to_do() {
    let site = SiteDir::empty("");
    std::fs::remove_dir_all(site.path("content")).unwrap();
    let (code, _, stderr) = site.run(&["serve", "--config", "quire.toml"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("does not exist; create it"), "{stderr}");
}

#[test]
fn environment_selects_the_mode() {
    let site = SiteDir::empty("");
    std::fs::write(
        site.config(),
        "[listen]\nhttp = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    // The file says nothing about the mode; QUIRE_MODE=off serves plain HTTP.
    let output = std::process::Command::new(crate::support::BIN)
        .args(["check", "--config"])
        .arg(site.config())
        .env("QUIRE_MODE", "bogus")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("QUIRE_MODE: mode: unknown mode `bogus`")
    );
    drop(Binary::serve(&site, &["--mode", "off"]));
}

#[test]
fn check_and_serve_refuse_durations_that_would_overflow() {
    let site = SiteDir::empty(
        "check_every = \"500000000y\"\nlocal_ca_lifetime = \"500000000y\"\n\n[limits]\nhandshake_timeout = \"18446744073709551615s\"\nheader_read_timeout = \"18446744073709551615s\"\nidle_timeout = \"18446744073709551615s\"\nshutdown_grace = \"18446744073709551615s\"\n\n[stats]\nflush_every = \"18446744073709551615s\"\n",
    );
    let expect = [
        "quire.toml:12: tls.check_every: `500000000y` is out of range; use a duration from 1m to 7days",
        "quire.toml:13: tls.local_ca_lifetime: `500000000y` is out of range; use a duration from 1m to 200days",
        "quire.toml:16: limits.handshake_timeout: `18446744073709551615s` is out of range; use a duration from 1s to 5m",
        "quire.toml:17: limits.header_read_timeout: `18446744073709551615s` is out of range; use a duration from 1s to 5m",
        "quire.toml:18: limits.idle_timeout: `18446744073709551615s` is out of range; use a duration from 1s to 1h",
        "quire.toml:19: limits.shutdown_grace: `18446744073709551615s` is out of range; use a duration from 1s to 1h",
        "quire.toml:22: stats.flush_every: `18446744073709551615s` is out of range; use a duration from 1s to 1h",
    ];
    let (code, stdout, stderr) = site.run(&["check", "--config", "quire.toml"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    for line in expect {
        assert!(stdout.contains(line), "`{line}` in:\n{stdout}");
    }
    // Before the ranges, serve panicked (exit 101) adding the grace to an instant.
    let (code, _, stderr) = site.run(&["serve", "--config", "quire.toml"]);
    assert_eq!(code, 1, "{stderr}");
    for line in expect {
        assert!(stderr.contains(line), "`{line}` in:\n{stderr}");
    }
}
