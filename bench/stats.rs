//! Benchmarks of the reading statistics (src/stats/).
//!
//! - `record/one_view`: one `Recorder::record` of a browser page view with a
//!   referrer, on one thread; `record/bot`: the same for a crawler.
//! - `record/two_threads`: page views recorded by two threads at once. The
//!   time is per view on each thread, so it equals `record/one_view` when
//!   recording is contention-free (given two idle cores).
//! - `flush/100k_views/sled` and `.../memory`: one flush of 100,000 buffered
//!   views (pages, referrers, feeds, 404s, bots; two hours) into a new store.
//! - `flush/100k_views/postgres`: the same flush into a cluster's shared
//!   tables (`PgStats`), measured when `QUIRE_BENCH_POSTGRES` names a
//!   database the bench may migrate and empty (bench/cluster.sh starts a
//!   server and sets it); the tables are emptied before each flush,
//!   untimed, as sled gets a new store.
//! - `maintain/year_1000_paths`: rolling a year of hourly records (8,760
//!   hours of 1,000 pages plus the site: 8.8M records, in sled) up into days.
//!
//! Recording drains the buffers between timed chunks, so nothing is dropped
//! (checked at every drain). The year store is built once, by a child
//! process, which takes minutes; each maintain run first undoes the previous
//! roll-up (untimed). Under `cargo test --all-targets` (each benchmark run
//! once) every data set is small instead.
//!
//! Run: cargo bench --bench stats
//!      cargo bench --bench stats -- record     (one group)

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group};
use quire::clock::{Clock, ManualClock, SharedClock};
use quire::stats::flush::flush;
use quire::stats::maintain::{Retention, maintain};
use quire::stats::privacy::{Salt, Salts};
use quire::stats::recorder::View;
use quire::stats::schema::{Counts, DAILY, Day, Hour, Meta, Metric, Series, hourly_key};
use quire::stats::store::{Batch, MemoryStore, SledStore, StatsStore};
use quire::stats::{Drained, Hit, HitKind, Recorder, RecorderSettings, Sealed, StatsBackend};

const SITE: &str = "example.org";
const BROWSER: &[u8] = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
const BROWSERS: &[&[u8]] = &[
    BROWSER,
    b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    b"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
];
const BOTS: &[&[u8]] = &[
    b"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    b"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    b"curl/8.5.0",
    b"python-requests/2.31.0",
];
const REFERER: &str = "https://news.ycombinator.com/item?id=1";

/// How big the data sets are: real sizes under `cargo bench`, small ones
/// when `cargo test` runs each benchmark once.
struct Scale {
    flush_views: usize,
    year_hours: u32,
    year_paths: usize,
}

fn scale() -> Scale {
    // Criterion's own rule: it benchmarks with `--bench` and without `--test`.
    let args: Vec<String> = std::env::args().collect();
    let benchmarking =
        args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list");
    if benchmarking {
        Scale {
            flush_views: 100_000,
            year_hours: 365 * 24,
            year_paths: 1_000,
        }
    } else {
        Scale {
            flush_views: 2_000,
            year_hours: 48,
            year_paths: 10,
        }
    }
}

/// A small deterministic generator (splitmix64), so every run sees the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }

    /// Mostly small: a few popular items and a long tail.
    fn skewed(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * u) * n as f64) as usize
    }
}

fn page_path(i: usize) -> String {
    format!(
        "/posts/2025-{:02}-{:02}-notes-on-topic-{i:04}/",
        i % 12 + 1,
        i % 28 + 1
    )
}

fn recorder(capacity: usize, salts: Arc<Salts>, clock: SharedClock) -> Recorder {
    Recorder::new(
        RecorderSettings {
            site: SITE.into(),
            own_hosts: vec![SITE.into()],
            respect_opt_out: true,
            capacity,
        },
        salts,
        clock,
    )
}

// ---------------------------------------------------------------- record

/// Views each thread records between two (untimed) drains.
const CHUNK: u64 = 50_000;
/// Room for a chunk from every thread, whatever shard each one lands on.
const RECORD_CAPACITY: usize = 1 << 20;

/// 64 hits of one kind from different clients (IPv4 and IPv6).
fn hits(user_agent: &'static [u8]) -> Vec<Hit<'static>> {
    (0u8..64)
        .map(|i| Hit {
            kind: HitKind::Page,
            path: "/posts/2025-03-14-notes-on-topic-0042/",
            client: if i % 4 == 3 {
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, u16::from(i), 0, 0, 0, 1))
            } else {
                IpAddr::V4(Ipv4Addr::new(198, 51, 100, i))
            },
            user_agent,
            referer: Some(REFERER),
            opted_out: false,
        })
        .collect()
}

/// Takes what the recorder holds; no view may have been dropped.
fn drain_checked(recorder: &Recorder) {
    let (views, dropped) = recorder.drain();
    assert_eq!(dropped, 0, "the buffer filled up during a measurement");
    drop(views);
}

/// Records `per_thread` views on each of `threads` threads at once; returns
/// the time spent recording. Threads meet at a barrier around each chunk and
/// one of them drains in between, outside the timed part. A chunk counts as
/// long as its slowest thread took.
fn record_on_threads(
    recorder: &Recorder,
    hits: &[Hit<'_>],
    threads: usize,
    per_thread: u64,
) -> Duration {
    let barrier = Barrier::new(threads);
    let per_chunk: Vec<Vec<Duration>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut next = hits.iter().cycle().skip(t * 17);
                    let mut times = Vec::new();
                    let mut done = 0;
                    while done < per_thread {
                        let n = CHUNK.min(per_thread - done);
                        barrier.wait();
                        let start = Instant::now();
                        for _ in 0..n {
                            recorder.record(black_box(next.next().expect("cycles")));
                        }
                        times.push(start.elapsed());
                        done += n;
                        if barrier.wait().is_leader() {
                            drain_checked(recorder);
                        }
                    }
                    times
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("recording thread"))
            .collect()
    });
    (0..per_chunk[0].len())
        .map(|c| {
            per_chunk
                .iter()
                .map(|times| times[c])
                .max()
                .unwrap_or_default()
        })
        .sum()
}

fn bench_record(c: &mut Criterion) {
    let recorder = recorder(
        RECORD_CAPACITY,
        Arc::new(Salts::default()),
        quire::clock::system(),
    );
    let browser = hits(BROWSER);
    let bot = hits(BOTS[0]);
    let mut group = c.benchmark_group("record");
    for (name, hits, threads) in [
        ("one_view", &browser, 1),
        ("bot", &bot, 1),
        ("two_threads", &browser, 2),
    ] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| record_on_threads(&recorder, hits, threads, iters));
        });
    }
    group.finish();
    drain_checked(&recorder);
}

// ---------------------------------------------------------------- flush

/// `count` buffered views, as the recorder makes them over an hour from
/// 10:30: ~200 pages (a few popular), ~20 referring sites, ~5,000 visitors,
/// 5% feed fetches, 5% 404s, 10% bots, 5% opted out.
fn realistic_views(count: usize) -> (Vec<View>, Vec<(Day, Salt)>, DateTime<Utc>) {
    let start = Utc.with_ymd_and_hms(2026, 5, 1, 10, 30, 0).unwrap();
    let clock = ManualClock::new(start);
    let salts = Arc::new(Salts::default());
    let recorder = recorder(count * 8, salts.clone(), clock.clone());
    let pages: Vec<String> = (0..200).map(page_path).collect();
    let missing: Vec<String> = (0..40)
        .map(|i| format!("/wp-content/plugins/p{i}/readme.txt"))
        .collect();
    let referers: Vec<String> = (0..20)
        .map(|i| format!("https://site{i}.example.net/links/{i}"))
        .collect();
    let own_referer = format!("https://{SITE}/");
    let step = chrono::Duration::milliseconds(3_600_000 / count as i64);
    let mut rng = Rng(42);
    for _ in 0..count {
        let visitor = rng.below(5_000) as u32;
        let client = IpAddr::V4(Ipv4Addr::from(0x5d00_0000 + visitor * 7919));
        let mut hit = Hit {
            kind: HitKind::Page,
            path: &pages[rng.skewed(pages.len())],
            client,
            user_agent: BROWSERS[visitor as usize % BROWSERS.len()],
            referer: None,
            opted_out: rng.percent(5),
        };
        match rng.below(100) {
            0..10 => hit.user_agent = BOTS[rng.below(BOTS.len())],
            10..15 => {
                hit.kind = HitKind::Feed;
                hit.path = "/atom.xml";
            }
            15..20 => {
                hit.kind = HitKind::NotFound;
                hit.path = &missing[rng.below(missing.len())];
            }
            20..45 => hit.referer = Some(&referers[rng.skewed(referers.len())]),
            45..80 => hit.referer = Some(&own_referer),
            _ => {}
        }
        recorder.record(&hit);
        clock.advance(step);
    }
    let (views, dropped) = recorder.drain();
    assert_eq!((views.len(), dropped), (count, 0));
    (views, salts.current(), clock.now())
}

fn new_sled() -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SledStore::open(&dir.path().join("stats")).expect("sled store");
    (dir, store)
}

fn bench_flush(c: &mut Criterion) {
    let scale = scale();
    let (views, salts, now) = realistic_views(scale.flush_views);
    let write = |store: &dyn StatsStore, views: &[View]| {
        let done = flush(store, views, 0, &salts, now).expect("flush");
        assert_eq!(done.views, views.len());
    };
    let mut group = c.benchmark_group("flush");
    group.sample_size(10);
    group.throughput(Throughput::Elements(views.len() as u64));
    // Inputs are handed back so that closing the store is not timed.
    group.bench_function("100k_views/sled", |b| {
        b.iter_batched(
            || (new_sled(), views.clone()),
            |(sled, views)| {
                write(&sled.1, &views);
                (sled, views)
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("100k_views/memory", |b| {
        b.iter_batched(
            || (MemoryStore::default(), views.clone()),
            |(store, views)| {
                write(&store, &views);
                (store, views)
            },
            BatchSize::PerIteration,
        );
    });
    if let Ok(url) = std::env::var("QUIRE_BENCH_POSTGRES") {
        let pg = SharedTables::open(&url);
        let batch = [Sealed {
            seq: 1,
            views: views.len(),
            dropped: 0,
        }];
        group.bench_function("100k_views/postgres", |b| {
            b.iter_batched(
                || pg.empty(),
                |()| {
                    let drained = Drained {
                        views: &views,
                        batches: &batch,
                    };
                    let done =
                        StatsBackend::flush(&pg.stats, &drained, &salts, now).expect("flush");
                    assert_eq!(done.views, views.len());
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

/// A cluster's statistics tables, for `flush/100k_views/postgres`.
struct SharedTables {
    runtime: tokio::runtime::Runtime,
    cluster: quire::cluster::Cluster,
    stats: quire::stats::postgres::PgStats,
}

impl SharedTables {
    fn open(url: &str) -> SharedTables {
        let text = format!("[cluster]\npostgres = \"{url}\"\nnode = \"bench\"\n");
        let config = quire::config::Config::from_parts(
            None,
            &text,
            &Default::default(),
            &quire::config::no_env,
        )
        .expect("QUIRE_BENCH_POSTGRES is a PostgreSQL connection string");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let cluster = {
            let _entered = runtime.enter();
            quire::cluster::Cluster::start(
                config.cluster.as_ref().expect("a [cluster] section"),
                quire::clock::system(),
                vec![&quire::stats::postgres::AREA],
            )
        };
        let stats = quire::stats::postgres::PgStats::new(cluster.clone(), runtime.handle().clone());
        SharedTables {
            runtime,
            cluster,
            stats,
        }
    }

    /// Empties every statistics table but the layout's own record.
    fn empty(&self) {
        self.runtime.block_on(async {
            let client = self
                .cluster
                .client()
                .await
                .expect("the bench's PostgreSQL answers");
            client
                .batch_execute(
                    "TRUNCATE quire_stats_hourly, quire_stats_daily, quire_stats_node_daily, \
                     quire_stats_seen, quire_stats_batches, quire_stats_parcels",
                )
                .await
                .expect("empty the statistics tables");
        });
    }
}

// ---------------------------------------------------------------- maintain

/// Records written to sled per batch while building the year.
const BUILD_BATCH: usize = 50_000;
/// `stats --build-year DIR HOURS PATHS`: the bench binary run as a child to
/// write the year store (see [`build_year`]).
const BUILD_YEAR: &str = "--build-year";
const SETTLE: Duration = Duration::from_secs(300);

fn first_hour() -> Hour {
    Hour::of(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap())
}

/// A sled store holding `hours` hourly buckets from 2025-01-01, each with the
/// site series and `paths` page series, and nothing rolled up yet.
struct Year {
    dir: tempfile::TempDir,
    store: SledStore,
    hours: u32,
    /// Just after the last hour has settled.
    now: DateTime<Utc>,
}

/// Builds the year store in a child process, then opens it here. Writing
/// 8.8M records leaves the writing process with gigabytes of sled pages and
/// a fragmented heap, in which the same roll-up runs several times slower; a
/// server opens its store from disk, and so does the benchmark.
fn build_year(hours: u32, paths: usize) -> Year {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("stats");
    let exe = std::env::current_exe().expect("the bench binary");
    let status = std::process::Command::new(exe)
        .arg(BUILD_YEAR)
        .arg(&path)
        .arg(hours.to_string())
        .arg(paths.to_string())
        .status()
        .expect("run the bench binary to build the year");
    assert!(status.success(), "building the year failed: {status}");
    let built = started.elapsed();
    let opening = Instant::now();
    let store = SledStore::open(&path).expect("open the year");
    eprintln!(
        "maintain: built in {:.1} s, opened in {:.1} s; store {} MiB on disk; RSS {}",
        built.as_secs_f64(),
        opening.elapsed().as_secs_f64(),
        disk_usage(dir.path()) >> 20,
        memory_use(),
    );
    Year {
        dir,
        store,
        hours,
        now: Hour(first_hour().0 + hours).start() + SETTLE,
    }
}

/// The child's side of [`build_year`]: writes the hourly records, `BUILD_BATCH`
/// per batch, directly in the store's layout.
fn write_year(path: &Path, hours: u32, paths: usize) {
    let store = SledStore::open(path).expect("sled store");
    let series: Vec<Series> = std::iter::once(Series::site())
        .chain((0..paths).map(|p| Series::new(Metric::Page, &page_path(p))))
        .collect();
    let mut rng = Rng(7);
    let mut batch = Batch::default();
    let first = first_hour().0;
    for hour in (first..first + hours).map(Hour) {
        for s in &series {
            let views = 1 + rng.below(30) as u64;
            let counts = match s.metric {
                Metric::Site => Counts {
                    views: views * paths as u64,
                    visitors: views * paths as u64 / 3,
                    feed_fetches: views,
                    feed_readers: views / 2,
                    bot_views: views * 4,
                    not_found: views / 3,
                    dropped: 0,
                },
                _ => Counts {
                    views,
                    visitors: views / 2 + 1,
                    ..Counts::default()
                },
            };
            batch.put(hourly_key(hour, s), counts.encode());
            if batch.len() >= BUILD_BATCH {
                store
                    .apply(std::mem::take(&mut batch))
                    .expect("write hours");
            }
        }
    }
    store.apply(batch).expect("write hours");
    eprintln!(
        "maintain: wrote {hours} hours x {} series = {} hourly records; writer's RSS {}",
        series.len(),
        u64::from(hours) * series.len() as u64,
        memory_use(),
    );
}

/// Puts the store back as it was built: no daily buckets, no watermark.
fn undo_roll_up(store: &dyn StatsStore) {
    loop {
        let days = store
            .range(&[DAILY], &[DAILY + 1], BUILD_BATCH)
            .expect("read days");
        if days.is_empty() {
            break;
        }
        let mut batch = Batch::default();
        for (key, _) in days {
            batch.delete(key);
        }
        store.apply(batch).expect("delete days");
    }
    let mut batch = Batch::default();
    Meta::AggregatedUntil.clear(&mut batch);
    store.apply(batch).expect("clear the watermark");
}

fn bench_maintain(c: &mut Criterion) {
    let scale = scale();
    // Nothing is old enough to prune: only the roll-up is measured.
    let retention = Retention {
        hourly_days: 3650,
        daily_days: 3650,
        settle: SETTLE,
    };
    let mut year: Option<Year> = None;
    let mut group = c.benchmark_group("maintain");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("year_1000_paths", |b| {
        // Built on first use, so that a filter that skips this costs nothing.
        let year = year.get_or_insert_with(|| build_year(scale.year_hours, scale.year_paths));
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                undo_roll_up(&year.store);
                let start = Instant::now();
                let done = maintain(&year.store, year.now, &retention).expect("maintain");
                total += start.elapsed();
                assert_eq!(done.hours_rolled_up, year.hours);
                assert_eq!(done.records_pruned, 0);
            }
            total
        });
    });
    group.finish();
    if let Some(year) = &year {
        eprintln!(
            "maintain: after the runs, store {} MiB on disk; RSS {}",
            disk_usage(year.dir.path()) >> 20,
            memory_use(),
        );
    }
}

/// Bytes allocated on disk under `dir`.
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => pending.push(entry.path()),
                Ok(m) => total += m.blocks() * 512,
                Err(_) => {}
            }
        }
    }
    total
}

/// This process's resident and peak memory, from /proc (Linux).
fn memory_use() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map_or("?".to_string(), |v| v.trim().to_string())
    };
    format!("{} (peak {})", field("VmRSS:"), field("VmHWM:"))
}

criterion_group!(benches, bench_record, bench_flush, bench_maintain);

/// `criterion_main!`, plus the child mode of [`build_year`].
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, path, hours, paths] = args.as_slice()
        && flag == BUILD_YEAR
    {
        let usage = "usage: --build-year DIR HOURS PATHS";
        write_year(
            Path::new(path),
            hours.parse().expect(usage),
            paths.parse().expect(usage),
        );
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
