//! The dashboard: one server-rendered HTML page, readable without JavaScript
//! and with no external assets. Charts are inline SVG drawn here; styles are
//! inline. Sections: readiness, certificate, the cluster (when a node of
//! one), traffic, readers (30 and 365
//! days, top pages and referrers, 404s), tasks, recent problems.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::health;
use super::recent;
use super::sources::Sources;
use crate::acme::certs::RenewalStatus;
use crate::site::Problem;
use crate::site::markdown::escape_html as esc;
use crate::stats::Report;
use crate::stats::schema::Counts;

// Cards wrap in a flex row rather than an auto-fit grid: a grid keeps one
// column count for every row, so a row with fewer cards than columns (the top
// two at 1280 px) left a blank column; flex lets each line's cards share its
// whole width at any width.
const STYLE: &str = "
:root{color-scheme:light dark;--fg:#1d2433;--muted:#5b6478;--bg:#f6f7fb;--card:#fff;--line:#dfe3ec;--views:#3b6fd8;--visitors:#e0873a;--ok:#1f8a4c;--bad:#c23b3b}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9f0;--muted:#9aa3b5;--bg:#12151c;--card:#1b1f29;--line:#2c3240}}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{padding:20px 24px 8px}h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:var(--muted)}
main{display:flex;flex-wrap:wrap;align-items:stretch;gap:16px;padding:16px 24px 32px}
section{flex:1 1 300px;background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px;min-width:0}
section.wide{flex-basis:100%}section.broad{flex:3 1 600px}h2{margin:0 0 10px;font-size:16px}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}td,th{padding:4px 6px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
td.n,th.n{text-align:right}td.path{word-break:break-all}td.detail{overflow-wrap:anywhere}
.ok{color:var(--ok);font-weight:600}.bad{color:var(--bad);font-weight:600}.muted{color:var(--muted)}
.legend span{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 12px}
svg{width:100%;height:auto;display:block}svg text{fill:var(--muted);font-size:11px}
.big{font-size:26px;font-weight:650}.figures{display:flex;gap:28px;flex-wrap:wrap;margin-bottom:8px}
";

/// Bars for views, a line for visitors, one slot per day.
fn day_chart(days: &[(String, Counts)]) -> String {
    let (width, height, left, bottom) = (900.0, 180.0, 44.0, 22.0);
    let plot_w = width - left - 8.0;
    let plot_h = height - bottom - 10.0;
    let max = days
        .iter()
        .map(|(_, c)| c.views.max(c.visitors))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = plot_w / days.len().max(1) as f64;
    let y = |v: u64| 10.0 + plot_h - (v as f64 / max) * plot_h;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"views and visitors per day\">"
    );
    for step in 0..=4 {
        let value = (max * f64::from(step) / 4.0).round() as u64;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y0:.1}\" y2=\"{y0:.1}\" stroke=\"currentColor\" stroke-opacity=\"0.12\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{value}</text>",
            width - 8.0,
            left - 6.0,
            y(value) + 4.0,
            y0 = y(value),
        );
    }
    let mut line = String::new();
    for (i, (label, counts)) in days.iter().enumerate() {
        let x = left + slot * i as f64;
        let top = y(counts.views);
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"var(--views)\" rx=\"1\"><title>{}: {} views, {} visitors</title></rect>",
            x + slot * 0.12,
            (slot * 0.76).max(0.6),
            10.0 + plot_h - top,
            esc(label),
            counts.views,
            counts.visitors
        );
        let _ = write!(line, "{:.1},{:.1} ", x + slot / 2.0, y(counts.visitors));
    }
    let _ = write!(
        svg,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"var(--visitors)\" stroke-width=\"2\" stroke-linejoin=\"round\"/>",
        line.trim_end()
    );
    if let (Some((first, _)), Some((last, _))) = (days.first(), days.last()) {
        let _ = write!(
            svg,
            "<text x=\"{left}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            height - 5.0,
            esc(first),
            width - 8.0,
            height - 5.0,
            esc(last)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Folds a long range into weeks so that a year stays readable.
fn weekly(report: &Report) -> Vec<(String, Counts)> {
    report
        .days
        .chunks(7)
        .map(|week| {
            let mut sum = Counts::default();
            for (_, counts) in week {
                sum.add(counts);
            }
            (format!("week of {}", week[0].0.date()), sum)
        })
        .collect()
}

fn ranking(
    out: &mut String,
    title: &str,
    first: &str,
    rows: &[crate::stats::report::Ranked],
    visitors: bool,
) {
    let _ = write!(out, "<section><h2>{title}</h2>");
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">Nothing yet.</p></section>");
        return;
    }
    let _ = write!(
        out,
        "<table><tr><th>{first}</th><th class=\"n\">{}</th>{}</tr>",
        if visitors { "views" } else { "requests" },
        if visitors {
            "<th class=\"n\">visitors</th>"
        } else {
            ""
        }
    );
    for row in rows {
        let _ = write!(
            out,
            "<tr><td class=\"path\">{}</td><td class=\"n\">{}</td>",
            esc(&row.name),
            row.views
        );
        if visitors {
            let _ = write!(out, "<td class=\"n\">{}</td>", row.visitors);
        }
        out.push_str("</tr>");
    }
    out.push_str("</table></section>");
}

fn readers(out: &mut String, sources: &Sources) {
    let Some(stats) = &sources.stats else {
        out.push_str("<section class=\"wide\"><h2>Readers</h2><p class=\"muted\">Statistics are disabled ([stats] enabled = false).</p></section>");
        return;
    };
    // A shared store that is down would hold the page for the pool's
    // timeouts on every read; the views wait in memory and the outbox.
    if sources
        .cluster
        .as_ref()
        .is_some_and(|c| !c.health().is_up())
    {
        out.push_str("<section class=\"wide\"><h2>Readers</h2><p class=\"bad\">The statistics are kept in the cluster's PostgreSQL, which this node cannot reach: views wait in memory (then in the outbox on disk), and the figures come back with the engine.</p></section>");
        return;
    }
    // Up to the second: what the recorder holds goes to the store first.
    if let Err(e) = stats.flush_now() {
        let _ = write!(
            out,
            "<section class=\"wide\"><p class=\"bad\">{}</p></section>",
            esc(&e.to_string())
        );
    }
    let (month, year) = match (stats.report(30, 10), stats.report(365, 0)) {
        (Ok(month), Ok(year)) => (month, year),
        (Err(e), _) | (_, Err(e)) => {
            let _ = write!(
                out,
                "<section class=\"wide\"><h2>Readers</h2><p class=\"bad\">{}</p></section>",
                esc(&e.to_string())
            );
            return;
        }
    };
    let days: Vec<(String, Counts)> = month
        .days
        .iter()
        .map(|(day, counts)| (day.date().to_string(), *counts))
        .collect();
    let t = &month.total;
    let _ = write!(
        out,
        "<section class=\"wide\"><h2>Readers, last 30 days</h2><div class=\"figures\">\
         <div><div class=\"big\">{}</div><div class=\"muted\">page views</div></div>\
         <div><div class=\"big\">{}</div><div class=\"muted\">visitors (sum of daily uniques)</div></div>\
         <div><div class=\"big\">{}</div><div class=\"muted\">feed fetches</div></div>\
         <div><div class=\"big\">{}</div><div class=\"muted\">bot requests</div></div>\
         <div><div class=\"big\">{}</div><div class=\"muted\">404s</div></div></div>\
         <p class=\"legend\"><span style=\"background:var(--views)\"></span>views<span style=\"background:var(--visitors)\"></span>daily unique visitors</p>{}",
        t.views,
        t.visitors,
        t.feed_fetches,
        t.bot_views,
        t.not_found,
        day_chart(&days)
    );
    if t.dropped > 0 {
        let _ = write!(
            out,
            "<p class=\"bad\">{} views were dropped under overload.</p>",
            t.dropped
        );
    }
    let _ = write!(
        out,
        "<h2 style=\"margin-top:14px\">Last 365 days, by week</h2>{}<p class=\"muted\">From {}.</p></section>",
        day_chart(&weekly(&year)),
        esc(&stats.store().describe())
    );
    ranking(out, "Top pages (30 days)", "page", &month.pages, true);
    ranking(
        out,
        "Top referrers (30 days)",
        "referrer",
        &month.referrers,
        true,
    );
    ranking(
        out,
        "Missing pages (30 days)",
        "path",
        &month.not_found,
        false,
    );
}

fn certificate(
    out: &mut String,
    sources: &Sources,
    status: Option<&RenewalStatus>,
    now: DateTime<Utc>,
) {
    out.push_str("<section><h2>Certificate</h2>");
    let Some(resolver) = &sources.resolver else {
        out.push_str(
            "<p class=\"muted\">Plain HTTP (mode off): TLS is the proxy's job.</p></section>",
        );
        return;
    };
    // First, so it is seen at a glance.
    if let Some((alert, status)) = status.and_then(|s| Some((s.alert?, s))) {
        let not_after = resolver.served().iter().map(|c| c.not_after).min();
        let _ = write!(
            out,
            "<p class=\"bad\"><strong>Alert: {}</strong>. {}</p>",
            alert.label(),
            esc(&crate::acme::alert::describe(alert, not_after, status, now))
        );
    }
    out.push_str("<table>");
    for cert in resolver.served() {
        let days = (cert.not_after - now).num_days();
        let class = if cert.temporary || days < 7 {
            "bad"
        } else {
            "ok"
        };
        let _ = write!(
            out,
            "<tr><th>domains</th><td>{}</td></tr><tr><th>issuer</th><td>{}</td></tr>\
             <tr><th>expires</th><td>{} (<span class=\"{class}\">{days} days left</span>)</td></tr>",
            esc(&cert.names.join(", ")),
            esc(&cert.issuer),
            crate::clock::for_people(cert.not_after)
        );
    }
    if let Some(status) = status {
        let when = |t: Option<DateTime<Utc>>| {
            t.map_or("-".to_string(), |t| crate::clock::for_people(t).to_string())
        };
        let _ = write!(
            out,
            "<tr><th>renews after</th><td>{}</td></tr><tr><th>next check</th><td>{}</td></tr><tr><th>last success</th><td>{}</td></tr>",
            when(status.renew_after),
            when(status.next_check),
            when(status.last_success)
        );
        if let Some(by) = &status.issued_by {
            let _ = write!(out, "<tr><th>ordered from</th><td>{}</td></tr>", esc(by));
        }
        // A fallback CA issued: the first one needs looking at even though
        // the site is fine.
        for passed in &status.passed_over {
            let _ = write!(
                out,
                "<tr><th>fell back</th><td class=\"bad\">{} failed: {}</td></tr>",
                esc(&passed.directory),
                esc(&passed.error)
            );
        }
        if let Some(error) = &status.last_error {
            let _ = write!(
                out,
                "<tr><th>last error</th><td class=\"bad\">{} ({} in a row)</td></tr>",
                esc(error),
                status.consecutive_failures
            );
        }
    }
    out.push_str("</table></section>");
}

fn traffic(out: &mut String, sources: &Sources, now: DateTime<Utc>) {
    let (kinds, total) = sources.metrics.request_totals();
    let (count, mean) = sources.metrics.latency_summary();
    let uptime = (now - sources.started).num_seconds().max(1);
    let _ = write!(
        out,
        "<section><h2>Traffic since start</h2><div class=\"figures\">\
         <div><div class=\"big\">{:.2}</div><div class=\"muted\">requests/s (average)</div></div>\
         <div><div class=\"big\">{:.2} ms</div><div class=\"muted\">mean time to respond ({count} requests)</div></div></div><table>",
        total as f64 / uptime as f64,
        mean * 1000.0
    );
    for (kind, n) in kinds.iter().filter(|(_, n)| *n > 0) {
        let _ = write!(out, "<tr><td>{kind}</td><td class=\"n\">{n}</td></tr>");
    }
    out.push_str("</table></section>");
}

fn tasks(out: &mut String, sources: &Sources) {
    out.push_str(
        "<section><h2>Tasks</h2><table><tr><th>task</th><th class=\"n\">restarts</th></tr>",
    );
    for (task, restarts) in sources.tasks.restarts() {
        let class = if restarts == 0 { "ok" } else { "bad" };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n {class}\">{restarts}</td></tr>",
            esc(task)
        );
    }
    out.push_str("</table></section>");
}

/// Newest first; a build's problem that the served build no longer has (its
/// file was fixed or deleted) is shown resolved.
fn problems(out: &mut String, logged: &[recent::LoggedProblem], current: &[Problem]) {
    out.push_str("<section class=\"broad\"><h2>Recent problems</h2>");
    if logged.is_empty() {
        out.push_str("<p class=\"ok\">None logged since start.</p></section>");
        return;
    }
    out.push_str("<table>");
    for p in logged {
        let (class, label, cell) = if p.resolved_by(current) {
            ("ok", "resolved", "<td class=\"muted\">")
        } else if p.level == "error" {
            ("bad", p.level, "<td>")
        } else {
            ("muted", p.level, "<td>")
        };
        let _ = write!(
            out,
            "<tr><td class=\"muted\">{}</td><td class=\"{class}\">{label}</td>{cell}{}</td></tr>",
            crate::clock::for_people(p.at),
            esc(&p.message)
        );
    }
    out.push_str("</table></section>");
}

/// `certificate_status` is read from the store beforehand, asynchronously.
pub fn render(sources: &Sources, certificate_status: Option<&RenewalStatus>) -> String {
    let now = sources.clock.now();
    let readiness = health::readiness(sources, now);
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} · quire dashboard</title><style>{STYLE}</style></head><body><header><h1>{}</h1>\
         <p>quire {} · mode {} · up since {} · <span class=\"{}\">{}</span>{}</p></header><main>",
        esc(&sources.title),
        esc(&sources.title),
        env!("CARGO_PKG_VERSION"),
        sources.mode,
        crate::clock::for_people(sources.started),
        if readiness.ready { "ok" } else { "bad" },
        if readiness.ready {
            "ready"
        } else {
            "not ready"
        },
        match certificate_status.and_then(|s| s.alert) {
            Some(alert) => format!(
                " · <span class=\"bad\">certificate alert: {}</span>",
                alert.label()
            ),
            None => String::new(),
        },
    );
    out.push_str("<section><h2>Readiness</h2><table>");
    for (name, check) in &readiness.checks {
        let _ = write!(
            out,
            "<tr><th>{name}</th><td class=\"{}\">{}</td><td class=\"detail\">{}</td></tr>",
            if check.ok { "ok" } else { "bad" },
            if check.ok { "ok" } else { "failing" },
            esc(&check.detail)
        );
    }
    out.push_str("</table></section>");
    certificate(&mut out, sources, certificate_status, now);
    if let Some(view) = &sources.cluster {
        super::cluster::section(&mut out, view, now);
    }
    traffic(&mut out, sources, now);
    readers(&mut out, sources);
    tasks(&mut out, sources);
    problems(
        &mut out,
        &recent::problems(),
        &sources.site.snapshot().summary.problems,
    );
    out.push_str("</main></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_a_bar_per_day_and_a_visitor_line() {
        let days: Vec<(String, Counts)> = (0..30)
            .map(|d| {
                (
                    format!("day {d}"),
                    Counts {
                        views: d,
                        visitors: d / 2,
                        ..Counts::default()
                    },
                )
            })
            .collect();
        let svg = day_chart(&days);
        assert_eq!(svg.matches("<rect").count(), 30);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("day 29: 29 views, 14 visitors"));
        let empty = day_chart(&[]);
        assert!(empty.starts_with("<svg") && empty.ends_with("</svg>"));
    }

    #[test]
    fn a_fixed_file_s_problem_is_shown_resolved() {
        let problem = |file: &str| Problem::new(file.into(), 3, "no title".into());
        let logged = |message: String, from_build| recent::LoggedProblem {
            at: chrono::DateTime::UNIX_EPOCH,
            level: "warning",
            message,
            from_build,
        };
        let shown = [
            logged(problem("content/fixed.md").to_string(), true),
            logged(problem("content/broken.md").to_string(), true),
            logged("the disk is slow".into(), false),
        ];
        let mut out = String::new();
        problems(&mut out, &shown, &[problem("content/broken.md")]);
        let row = |needle: &str| {
            out.split("<tr>")
                .find(|row| row.contains(needle))
                .unwrap_or_else(|| panic!("no row for {needle}: {out}"))
                .to_string()
        };
        assert!(row("fixed.md").contains(">resolved<"), "{out}");
        assert!(row("broken.md").contains(">warning<"), "{out}");
        assert!(row("the disk is slow").contains(">warning<"), "{out}");
    }
}
