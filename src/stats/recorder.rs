//! The hot path: [`Recorder::record`] turns one served request into a [`View`]
//! in memory, in well under a microsecond, and never waits. Views go into
//! sharded buffers (one short, uncontended lock per push, no I/O under it);
//! when a buffer is full the view is dropped and counted, so overload costs
//! statistics, never response time. The flusher drains the buffers.

use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::privacy::{self, BotRules, Salts};
use super::schema::Hour;
use crate::clock::SharedClock;

/// What kind of response a request got, as far as statistics care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitKind {
    /// An HTML page, served in full (200).
    Page,
    /// A feed (Atom or RSS), served or revalidated.
    Feed,
    /// A path that does not exist (404).
    NotFound,
}

/// One request, as the web layer describes it. Borrowed: recording copies
/// only what it keeps.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    pub kind: HitKind,
    pub path: &'a str,
    pub client: IpAddr,
    pub user_agent: &'a [u8],
    pub referer: Option<&'a str>,
    /// The reader asked not to be tracked (`DNT: 1` or `Sec-GPC: 1`).
    pub opted_out: bool,
}

/// What a view counts as, once bots are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewKind {
    Page,
    Feed,
    NotFound,
    Bot,
}

/// One recorded request, waiting in memory for the flusher.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct View {
    pub hour: Hour,
    pub kind: ViewKind,
    /// The page, feed or missing path; empty for bots.
    pub path: Box<str>,
    /// Another site's host, for pages reached from it.
    pub referrer: Option<Box<str>>,
    /// The day's visitor key; `None` for bots, 404s and readers who opted out.
    pub visitor: Option<u64>,
}

/// Paths longer than this are cut: a scanner's 404 must not fill the store.
const MAX_PATH_BYTES: usize = 256;

/// Settings of the recorder.
#[derive(Debug, Clone)]
pub struct RecorderSettings {
    /// The canonical host, mixed into visitor keys.
    pub site: String,
    /// Hosts whose referrals are the site's own navigation.
    pub own_hosts: Vec<String>,
    /// Honour `DNT` and `Sec-GPC` by not giving those readers a visitor key.
    pub respect_opt_out: bool,
    /// Views buffered at most between flushes, across all shards.
    pub capacity: usize,
}

/// Cheap to clone; all clones feed the same buffers.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Shard]>,
    shard_capacity: usize,
    settings: RecorderSettings,
    salts: Arc<Salts>,
    bots: BotRules,
    clock: SharedClock,
    /// Dropped since the last drain.
    dropped: AtomicU64,
    dropped_total: AtomicU64,
    /// Wakes the flusher early when a buffer is half full.
    filling: tokio::sync::Notify,
}

/// One buffer, on its own cache lines so that threads do not contend.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    buffer: Mutex<Buffer>,
}

#[derive(Default)]
struct Buffer {
    views: Vec<View>,
    /// Views ever pushed here, for metrics.
    recorded: u64,
}

impl Recorder {
    pub fn new(settings: RecorderSettings, salts: Arc<Salts>, clock: SharedClock) -> Recorder {
        let threads = std::thread::available_parallelism().map_or(4, |n| n.get());
        let count = (threads * 2).next_power_of_two();
        let shard_capacity = settings.capacity.div_ceil(count).max(1);
        Recorder {
            inner: Arc::new(Inner {
                shards: (0..count).map(|_| Shard::default()).collect(),
                shard_capacity,
                settings,
                salts,
                bots: BotRules::default(),
                clock,
                dropped: AtomicU64::new(0),
                dropped_total: AtomicU64::new(0),
                filling: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Records one request. Never blocks on anything but a short push.
    pub fn record(&self, hit: &Hit<'_>) {
        let inner = &*self.inner;
        let hour = Hour::of(inner.clock.now_coarse());
        let agent = privacy::user_agent_digest(hit.user_agent);
        let view = if inner.bots.is_bot_cached(hit.user_agent, agent) {
            View {
                hour,
                kind: ViewKind::Bot,
                path: Box::from(""),
                referrer: None,
                visitor: None,
            }
        } else {
            let kind = match hit.kind {
                HitKind::Page => ViewKind::Page,
                HitKind::Feed => ViewKind::Feed,
                HitKind::NotFound => ViewKind::NotFound,
            };
            let identifiable =
                kind != ViewKind::NotFound && !(hit.opted_out && inner.settings.respect_opt_out);
            let visitor = identifiable.then(|| {
                let salt = inner.salts.for_day(hour.day());
                privacy::visitor_key(&salt, &inner.settings.site, hit.client, agent)
            });
            let referrer = match kind {
                ViewKind::Page => hit
                    .referer
                    .and_then(|r| privacy::referrer_host(r, &inner.settings.own_hosts))
                    .map(|host| host.to_ascii_lowercase().into_boxed_str()),
                _ => None,
            };
            View {
                hour,
                kind,
                path: Box::from(truncate(hit.path, MAX_PATH_BYTES)),
                referrer,
                visitor,
            }
        };
        let shard = &inner.shards[shard_index() & (inner.shards.len() - 1)];
        let mut buffer = shard.buffer.lock().unwrap_or_else(|e| e.into_inner());
        if buffer.views.len() < inner.shard_capacity {
            buffer.views.push(view);
            buffer.recorded += 1;
            let half_full = buffer.views.len() == inner.shard_capacity / 2;
            drop(buffer);
            if half_full {
                inner.filling.notify_one();
            }
        } else {
            drop(buffer);
            inner.dropped.fetch_add(1, Ordering::Relaxed);
            inner.dropped_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes every buffered view, and the count of views dropped since the
    /// last drain.
    pub fn drain(&self) -> (Vec<View>, u64) {
        let mut all = Vec::new();
        for shard in self.inner.shards.iter() {
            let mut buffer = shard.buffer.lock().unwrap_or_else(|e| e.into_inner());
            if all.is_empty() {
                all = std::mem::take(&mut buffer.views);
            } else {
                all.append(&mut buffer.views);
            }
        }
        (all, self.inner.dropped.swap(0, Ordering::Relaxed))
    }

    /// Resolves when a buffer is half full: time to flush before the
    /// interval is up.
    pub async fn filling(&self) {
        self.inner.filling.notified().await
    }

    /// Views dropped since the last drain.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Views recorded and dropped since start.
    pub fn totals(&self) -> (u64, u64) {
        let recorded = self
            .inner
            .shards
            .iter()
            .map(|s| s.buffer.lock().unwrap_or_else(|e| e.into_inner()).recorded)
            .sum();
        (recorded, self.inner.dropped_total.load(Ordering::Relaxed))
    }

    /// Views buffered at most, across all shards.
    pub fn capacity(&self) -> usize {
        self.inner.settings.capacity
    }

    pub fn salts(&self) -> &Arc<Salts> {
        &self.inner.salts
    }
}

fn truncate(path: &str, max: usize) -> &str {
    if path.len() <= max {
        return path;
    }
    let mut end = max;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

/// Each thread sticks to one shard; runtime worker threads are long-lived, so
/// on a busy server every core mostly pushes into its own buffer.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = Cell::new(NEXT.fetch_add(1, Ordering::Relaxed));
    }
    SHARD.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use chrono::{TimeZone, Utc};

    const BROWSER: &[u8] =
        b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

    fn recorder(capacity: usize, clock: SharedClock) -> Recorder {
        Recorder::new(
            RecorderSettings {
                site: "example.org".into(),
                own_hosts: vec!["example.org".into()],
                respect_opt_out: true,
                capacity,
            },
            Arc::new(Salts::default()),
            clock,
        )
    }

    fn hit(kind: HitKind, path: &str) -> Hit<'_> {
        Hit {
            kind,
            path,
            client: "203.0.113.5".parse().unwrap(),
            user_agent: BROWSER,
            referer: Some("https://Search.Example.net/?q=quire"),
            opted_out: false,
        }
    }

    #[test]
    fn views_are_bucketed_by_hour_and_classified() {
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 5, 1, 10, 59, 59).unwrap());
        let recorder = recorder(100, clock.clone());
        recorder.record(&hit(HitKind::Page, "/posts/a/"));
        clock.advance(chrono::Duration::seconds(1));
        recorder.record(&hit(HitKind::NotFound, "/wp-login.php"));
        recorder.record(&Hit {
            user_agent: b"curl/8.5.0",
            ..hit(HitKind::Page, "/")
        });
        recorder.record(&Hit {
            opted_out: true,
            ..hit(HitKind::Feed, "/atom.xml")
        });
        let (views, dropped) = recorder.drain();
        assert_eq!(dropped, 0);
        let ten = Hour::of(Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0).unwrap());
        assert_eq!(views.len(), 4);
        let page = views.iter().find(|v| v.kind == ViewKind::Page).unwrap();
        assert_eq!(page.hour, ten);
        assert_eq!(page.referrer.as_deref(), Some("search.example.net"));
        assert!(page.visitor.is_some());
        let missing = views.iter().find(|v| v.kind == ViewKind::NotFound).unwrap();
        assert_eq!((missing.hour.0, missing.visitor), (ten.0 + 1, None));
        let bot = views.iter().find(|v| v.kind == ViewKind::Bot).unwrap();
        assert_eq!(&*bot.path, "");
        let feed = views.iter().find(|v| v.kind == ViewKind::Feed).unwrap();
        assert_eq!(feed.visitor, None, "DNT/Sec-GPC readers get no key");
        assert!(recorder.drain().0.is_empty());
    }

    #[test]
    fn a_full_buffer_drops_and_counts_instead_of_waiting() {
        let recorder = recorder(1, crate::clock::system());
        for _ in 0..5 {
            recorder.record(&hit(HitKind::Page, "/"));
        }
        let (views, dropped) = recorder.drain();
        assert_eq!(views.len() as u64 + dropped, 5);
        assert!(dropped >= 4, "one slot per shard at most");
        assert_eq!(recorder.dropped(), 0);
    }

    #[test]
    fn long_paths_are_cut_on_a_character_boundary() {
        let long = "é".repeat(200);
        assert!(truncate(&long, MAX_PATH_BYTES).len() <= MAX_PATH_BYTES);
        assert!(long.starts_with(truncate(&long, 255)));
    }
}
