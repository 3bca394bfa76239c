//! Reading statistics back: per-day totals, top pages, referrers and missing
//! paths over a range of days, for `quire stats` and the dashboard. A day is
//! its daily bucket plus whatever hours are not rolled up yet, so the answer
//! is the same before and after maintenance. Also renders a report as text.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::schema::{self, Counts, DAILY, Day, HOURLY, Hour, Meta, Metric, Series};
use super::store::{StatsStore, StatsStoreError};

/// One row of a ranking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub name: String,
    pub views: u64,
    /// Sum of daily unique visitors.
    pub visitors: u64,
}

/// Statistics over the days `from..=to` (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub from: Day,
    pub to: Day,
    /// Every day of the range, oldest first, days without traffic included.
    pub days: Vec<(Day, Counts)>,
    pub total: Counts,
    pub pages: Vec<Ranked>,
    pub referrers: Vec<Ranked>,
    pub not_found: Vec<Ranked>,
}

/// Collects the report; rankings keep their `top` first rows.
pub fn report(
    store: &dyn StatsStore,
    from: Day,
    to: Day,
    top: usize,
) -> Result<Report, StatsStoreError> {
    let aggregated_until = Hour(Meta::AggregatedUntil.read(store)?.unwrap_or(0));
    let mut per_day: BTreeMap<Day, Counts> = BTreeMap::new();
    let mut per_series: HashMap<Series, Counts> = HashMap::new();
    let mut take = |period: Day, key: &[u8], value: &[u8]| -> Result<(), StatsStoreError> {
        let (_, series) = schema::parse_bucket_key(key).ok_or_else(|| {
            StatsStoreError::Corrupt(format!("key {}", String::from_utf8_lossy(key)))
        })?;
        let counts = Counts::decode(value).ok_or_else(|| {
            StatsStoreError::Corrupt(format!("counters {}", String::from_utf8_lossy(key)))
        })?;
        if series.metric == Metric::Site {
            per_day.entry(period).or_default().add(&counts);
        } else {
            per_series.entry(series).or_default().add(&counts);
        }
        Ok(())
    };
    let end = to.next();
    for (key, value) in store.range(
        &schema::bucket_start(DAILY, from.0),
        &schema::bucket_start(DAILY, end.0),
        usize::MAX,
    )? {
        let day = Day(schema::parse_bucket_key(&key).map_or(0, |(d, _)| d));
        take(day, &key, &value)?;
    }
    let first_hour = aggregated_until.max(from.first_hour());
    if first_hour < end.first_hour() {
        for (key, value) in store.range(
            &schema::bucket_start(HOURLY, first_hour.0),
            &schema::bucket_start(HOURLY, end.first_hour().0),
            usize::MAX,
        )? {
            let day = Hour(schema::parse_bucket_key(&key).map_or(0, |(h, _)| h)).day();
            take(day, &key, &value)?;
        }
    }

    let days: Vec<(Day, Counts)> = (from.0..=to.0)
        .map(|d| (Day(d), per_day.get(&Day(d)).copied().unwrap_or_default()))
        .collect();
    let mut total = Counts::default();
    for (_, counts) in &days {
        total.add(counts);
    }
    let ranking = |metric: Metric| {
        let mut rows: Vec<Ranked> = per_series
            .iter()
            .filter(|(series, _)| series.metric == metric)
            .map(|(series, counts)| Ranked {
                name: series.name.clone(),
                views: counts.views,
                visitors: counts.visitors,
            })
            .collect();
        rows.sort_by(|a, b| b.views.cmp(&a.views).then_with(|| a.name.cmp(&b.name)));
        rows.truncate(top);
        rows
    };
    Ok(Report {
        from,
        to,
        pages: ranking(Metric::Page),
        referrers: ranking(Metric::Referrer),
        not_found: ranking(Metric::NotFound),
        days,
        total,
    })
}

/// Left-aligned first column, right-aligned numbers, two spaces between.
pub fn table(out: &mut String, headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i == 0 {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            } else {
                text.push_str("  ");
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(out, &mut headers.iter().copied());
    for row in rows {
        line(out, &mut row.iter().map(String::as_str));
    }
}

impl Report {
    /// The report as aligned plain-text tables.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Statistics for {} to {} (UTC days)\n",
            self.from.date(),
            self.to.date()
        );
        let count = |v: u64| v.to_string();
        let mut rows: Vec<Vec<String>> = self
            .days
            .iter()
            .map(|(day, c)| {
                vec![
                    day.date().to_string(),
                    count(c.views),
                    count(c.visitors),
                    count(c.feed_fetches),
                    count(c.feed_readers),
                    count(c.bot_views),
                    count(c.not_found),
                ]
            })
            .collect();
        let t = &self.total;
        rows.push(vec![
            "total".into(),
            count(t.views),
            count(t.visitors),
            count(t.feed_fetches),
            count(t.feed_readers),
            count(t.bot_views),
            count(t.not_found),
        ]);
        table(
            &mut out,
            &[
                "day",
                "views",
                "visitors",
                "feed fetches",
                "feed readers",
                "bot requests",
                "404s",
            ],
            &rows,
        );
        out.push_str(
            "visitors are daily unique visitors; a total over several days is the sum of daily uniques.\n",
        );
        if t.dropped > 0 {
            let _ = writeln!(
                out,
                "{} views were dropped under overload and are not counted above.",
                t.dropped
            );
        }
        let ranked =
            |out: &mut String, title: &str, first: &str, rows: &[Ranked], visitors: bool| {
                let _ = writeln!(out, "\n{title}");
                if rows.is_empty() {
                    out.push_str("  (none)\n");
                    return;
                }
                let body: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        let mut row = vec![r.name.clone(), count(r.views)];
                        if visitors {
                            row.push(count(r.visitors));
                        }
                        row
                    })
                    .collect();
                let headers: &[&str] = if visitors {
                    &[first, "views", "visitors"]
                } else {
                    &[first, "requests"]
                };
                table(out, headers, &body);
            };
        ranked(&mut out, "Top pages", "page", &self.pages, true);
        ranked(&mut out, "Top referrers", "referrer", &self.referrers, true);
        ranked(
            &mut out,
            "Missing pages (404)",
            "path",
            &self.not_found,
            false,
        );
        out
    }
}
