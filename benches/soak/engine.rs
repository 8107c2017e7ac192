//! The soak: the real daemon (`xtract run`, warm yt-dlp helper, real
//! yt-dlp and ffmpeg on media served on 127.0.0.1, Supabase Storage played
//! by the in-process double) through many jobs of mixed outcomes, with a
//! PostgreSQL restart and a Storage outage in the middle, sampling what a
//! daemon that runs for weeks must not accumulate. Used by `scripts/soak`
//! (benches/soak/main.rs) and, short, by tests/soak.rs.
//!
//! Needs the crate root to have `mod support` (tests/support).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

use crate::support::storage_double::{Fault, StorageDouble, KEY};
use crate::support::{media, tools, Daemon, DaemonOptions, TestDb};

pub struct Options {
    pub jobs: usize,
    /// Jobs finished before samples count: a new daemon grows to its
    /// working size (the helper imports what its first real downloads
    /// need, tokio's blocking pool and the connection pool fill up).
    pub warm_up: usize,
    pub sample_every: Duration,
    pub concurrency: usize,
    /// Say how far it got now and then (the long run).
    pub progress: bool,
}

impl Options {
    pub fn new(jobs: usize) -> Self {
        Options {
            jobs,
            warm_up: (jobs / 20).max(40),
            // Short runs need enough samples for a tenth to mean something.
            sample_every: if jobs >= 2000 {
                Duration::from_secs(3)
            } else {
                Duration::from_millis(500)
            },
            concurrency: 4,
            progress: jobs >= 2000,
        }
    }
}

/// One look at the daemon.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Jobs finished when it was taken.
    pub done: f64,
    pub daemon_rss_mb: f64,
    pub helper_rss_mb: f64,
    pub fds: f64,
    pub threads: f64,
    pub connections: f64,
    pub work_files: f64,
    pub children: f64,
}

/// Reads one counter of a sample.
pub type Counter = fn(&Sample) -> f64;

/// The counters, by name, as the summary line orders them.
pub const METRICS: [(&str, Counter); 7] = [
    ("daemon rss", |s| s.daemon_rss_mb),
    ("helper rss", |s| s.helper_rss_mb),
    ("fds", |s| s.fds),
    ("threads", |s| s.threads),
    ("connections", |s| s.connections),
    ("work files", |s| s.work_files),
    ("children", |s| s.children),
];

/// How much each counter may grow from the first tenth of the run to the
/// last (averages), beyond which the soak fails. A daemon keeps nothing per
/// job, so the job count explains no growth: the limits are the noise of a
/// sample catching up to four jobs in flight (a download child, ffmpeg,
/// work files, an upload's connection) and of the allocator. Set from the
/// first runs (README, Benchmarks): over 2,000 jobs the daemon's RSS moved
/// 22.2 -> 23.2 MB (0.2 MB per 1,000 jobs) and every other counter stayed
/// within 2 of where it started. A leak of one descriptor, thread,
/// connection, file or process per 1,000 jobs adds 20 over the full run,
/// and of 1 KB per job 20 MB: both fail it.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// MB of RSS per counter: allocator and caches settling after the
    /// first tenth (the first tenth includes the helper's warm-up).
    pub daemon_rss_mb: f64,
    pub helper_rss_mb: f64,
    pub fds: f64,
    pub threads: f64,
    pub connections: f64,
    pub work_files: f64,
    pub children: f64,
}

impl Limits {
    fn of(&self, metric: &str) -> f64 {
        match metric {
            "daemon rss" => self.daemon_rss_mb,
            "helper rss" => self.helper_rss_mb,
            "fds" => self.fds,
            "threads" => self.threads,
            "connections" => self.connections,
            "work files" => self.work_files,
            _ => self.children,
        }
    }
}

pub const LIMITS: Limits = Limits {
    daemon_rss_mb: 8.0,
    helper_rss_mb: 8.0,
    fds: 6.0,
    // tokio's blocking threads (files, name lookups) come and go with
    // bursts of work, and idle out after 10 s: short runs moved 5 -> 7.
    threads: 6.0,
    // The pool opens connections as jobs need them, up to concurrency + 4.
    connections: 4.0,
    work_files: 6.0,
    children: 2.0,
};

pub struct Report {
    pub jobs: usize,
    pub samples: Vec<Sample>,
    /// `status/error_code` → jobs.
    pub outcomes: BTreeMap<String, i64>,
    pub operator_retries: usize,
    pub cancels: usize,
    /// Jobs whose audio was a copy of an earlier job's.
    pub reused: i64,
    /// What the jobs that failed `internal` say (none is expected).
    pub internal: Vec<String>,
    pub elapsed: Duration,
}

impl Report {
    fn tenth(&self, last: bool) -> &[Sample] {
        let n = (self.samples.len() / 10).max(1).min(self.samples.len());
        if last {
            &self.samples[self.samples.len() - n..]
        } else {
            &self.samples[..n]
        }
    }

    fn average(samples: &[Sample], f: Counter) -> f64 {
        samples.iter().map(f).sum::<f64>() / samples.len().max(1) as f64
    }

    /// (first tenth's average, last tenth's average).
    pub fn ends(&self, f: Counter) -> (f64, f64) {
        (
            Self::average(self.tenth(false), f),
            Self::average(self.tenth(true), f),
        )
    }

    /// Least-squares slope per 1,000 jobs finished, over the samples after
    /// the first tenth (the warm-up is not growth).
    pub fn slope(&self, f: Counter) -> f64 {
        let skip = self.tenth(false).len();
        let points: Vec<(f64, f64)> = self.samples[skip..]
            .iter()
            .map(|s| (s.done / 1000.0, f(s)))
            .collect();
        let n = points.len() as f64;
        if n < 2.0 {
            return 0.0;
        }
        let (mx, my) = (
            points.iter().map(|p| p.0).sum::<f64>() / n,
            points.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        if sxx == 0.0 {
            0.0
        } else {
            sxy / sxx
        }
    }

    /// What grew beyond `limits`, one sentence each.
    pub fn problems(&self, limits: &Limits) -> Vec<String> {
        let mut problems = Vec::new();
        if self.samples.len() < 10 {
            problems.push(format!(
                "only {} samples: too few to judge",
                self.samples.len()
            ));
        }
        for (name, f) in METRICS {
            let (first, last) = self.ends(f);
            let allowed = limits.of(name);
            if last - first > allowed {
                problems.push(format!(
                    "{name} grew from {first:.1} to {last:.1} (allowed: +{allowed})"
                ));
            }
        }
        problems
    }

    /// The figures: averages of the first and last tenth, and slopes.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<12} {:>12} {:>12} {:>16}\n",
            "counter", "first tenth", "last tenth", "slope/1000 jobs"
        );
        for (name, f) in METRICS {
            let (first, last) = self.ends(f);
            out.push_str(&format!(
                "{name:<12} {first:>12.1} {last:>12.1} {:>16.3}\n",
                self.slope(f)
            ));
        }
        out
    }

    /// The one line `scripts/soak` ends with.
    pub fn summary(&self) -> String {
        let pair = |f: Counter, decimals: usize| {
            let (a, b) = self.ends(f);
            format!("{a:.decimals$}->{b:.decimals$}")
        };
        format!(
            "soak: {} jobs, daemon rss {} MB, helper rss {} MB, fds {}, threads {}, connections {}, work files {}, children {}",
            self.jobs,
            pair(METRICS[0].1, 1),
            pair(METRICS[1].1, 1),
            pair(METRICS[2].1, 0),
            pair(METRICS[3].1, 0),
            pair(METRICS[4].1, 0),
            pair(METRICS[5].1, 0),
            pair(METRICS[6].1, 0),
        )
    }
}

/// What a job is for, by its place in the run: mostly successes, and every
/// kind of outcome a daemon meets in a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// MP4 with AAC: the in-process cut.
    Mp4,
    /// WebM with Opus: ffmpeg.
    Webm,
    /// The same video as an earlier job: a copy in Storage.
    Reused,
    /// 404 from the site.
    NotFound,
    /// Bytes that are not media.
    Corrupt,
    /// A video without sound.
    NoAudio,
    /// Larger than XTRACT_MAX_FILESIZE_MB.
    TooLarge,
    /// Nothing listens: a network error, retried with backoff.
    Refused,
    /// A link the daemon's rules refuse (a YouTube channel).
    NotAVideo,
    /// Cancelled by the operator soon after it was queued.
    Cancelled,
}

const PATTERN: [Kind; 20] = {
    use Kind::*;
    [
        Mp4, Mp4, NotFound, Mp4, Webm, Reused, Mp4, Corrupt, Mp4, Cancelled, Mp4, NoAudio, Mp4,
        TooLarge, Mp4, Refused, Mp4, NotAVideo, Reused, Cancelled,
    ]
};

/// The media the site serves, in a folder of the run's own.
fn site_folder(dir: &Path) -> PathBuf {
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    for name in ["clip.mp4", "opus.webm", "corrupt.mp4", "silent.mp4"] {
        std::fs::copy(media().dir.join(name), site.join(name)).unwrap();
    }
    // Over the 2 MB limit the daemon gets, by its Content-Length.
    std::fs::write(site.join("big.mp4"), vec![0u8; 3 * 1024 * 1024]).unwrap();
    site
}

fn link(kind: Kind, i: usize, site: &str) -> String {
    match kind {
        Kind::Mp4 | Kind::Cancelled => format!("{site}/clip.mp4?n={i}"),
        Kind::Webm => format!("{site}/opus.webm?n={i}"),
        // An Mp4 job of the previous round: the same link, long finished.
        Kind::Reused => format!("{site}/clip.mp4?n={}", i.saturating_sub(22)),
        Kind::NotFound => format!("{site}/gone-{i}.mp4"),
        Kind::Corrupt => format!("{site}/corrupt.mp4?n={i}"),
        Kind::NoAudio => format!("{site}/silent.mp4?n={i}"),
        Kind::TooLarge => format!("{site}/big.mp4?n={i}"),
        Kind::Refused => format!("http://127.0.0.1:1/refused-{i}.mp4"),
        Kind::NotAVideo => format!("https://www.youtube.com/@someone{i}"),
    }
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

/// Runs the soak and returns what it saw.
pub async fn run(options: &Options) -> Report {
    let started = Instant::now();
    let mut db = TestDb::start().await;
    let storage = StorageDouble::start(true, None).await;
    let dir = tempfile::Builder::new()
        .prefix("xtract-soak-")
        .tempdir()
        .unwrap();
    let site_dir = site_folder(dir.path());
    let site_server = xtract::ops::media_server::MediaServer::start(&site_dir)
        .await
        .unwrap();
    let site = format!("http://{}", site_server.addr);
    // No pacing: the soak is about the daemon, not the platforms' limits.
    let platforms = dir.path().join("platforms.toml");
    let unpaced = "min_interval_secs = 0.0\njitter_secs = [0.0, 0.0]\n";
    std::fs::write(
        &platforms,
        ["other", "youtube"]
            .map(|p| format!("[{p}]\n{unpaced}max_attempts = 2\n"))
            .concat(),
    )
    .unwrap();

    let mut daemon_options = DaemonOptions::new(&tools().ytdlp);
    daemon_options.concurrency = options.concurrency;
    daemon_options.poll_secs = 1.0;
    daemon_options.extra_env = [
        ("XTRACT_STORAGE", "supabase"),
        ("SUPABASE_URL", storage.url.as_str()),
        ("SUPABASE_SERVICE_ROLE_KEY", KEY),
        ("XTRACT_PLATFORMS_FILE", &platforms.display().to_string()),
        ("XTRACT_MAX_FILESIZE_MB", "2"),
        ("RUST_LOG", "warn"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec();
    let mut daemon = Daemon::start(&db.url, &daemon_options);
    let pid = daemon.pid();
    let work_dir = daemon.work_dir();

    let mut client = connect(&db.owner_url).await;
    let mut samples = Vec::new();
    let mut enqueued = 0usize;
    let mut cancels: Vec<(Uuid, Instant)> = Vec::new();
    let mut cancelled = 0usize;
    // NotFound jobs the operator sends round once more when they fail.
    let mut to_retry: Vec<Uuid> = Vec::new();
    let mut retried = 0usize;
    let mut next_sample = Instant::now();
    let mut restarted_db = false;
    let mut outage_until: Option<Instant> = None;
    let mut outage_done = false;
    let mut forgotten_at = 0usize;
    let depth = options.concurrency * 3;
    let mut said = Instant::now();
    loop {
        let counts = client
            .query_one(
                "SELECT count(*) FILTER (WHERE status IN ('pending', 'processing')),
                        count(*) FILTER (WHERE status NOT IN ('pending', 'processing'))
                 FROM processing_jobs",
                &[],
            )
            .await;
        let Ok(counts) = counts else {
            // The server went away under us (our restart): reconnect.
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(Ok((c, conn))) = tokio::time::timeout(
                Duration::from_secs(5),
                tokio_postgres::connect(&db.owner_url, NoTls),
            )
            .await
            {
                tokio::spawn(conn);
                client = c;
            }
            continue;
        };
        let (active, finished): (i64, i64) = (counts.get(0), counts.get(1));
        let done = finished as usize;
        if enqueued >= options.jobs && active == 0 && to_retry.is_empty() && cancels.is_empty() {
            break;
        }
        // Keep the queue a few jobs deep.
        let mut room = depth.saturating_sub(active as usize);
        while room > 0 && enqueued < options.jobs {
            let kind = PATTERN[enqueued % PATTERN.len()];
            let url = link(kind, enqueued, &site);
            let inserted = client
                .query_one(
                    "INSERT INTO processing_jobs (user_id, original_url) VALUES ($1, $2) RETURNING id",
                    &[&Uuid::new_v4(), &url],
                )
                .await;
            let Ok(row) = inserted else { break };
            let id: Uuid = row.get(0);
            match kind {
                Kind::Cancelled => {
                    // Some while pending, some while running.
                    let after = Duration::from_millis((enqueued as u64 * 37) % 400);
                    cancels.push((id, Instant::now() + after));
                }
                Kind::NotFound if enqueued % 40 == 2 => to_retry.push(id),
                _ => {}
            }
            enqueued += 1;
            room -= 1;
        }
        // The operator: cancels, and a second go for some failed jobs.
        let now = Instant::now();
        let mut kept = Vec::new();
        for (id, at) in cancels.drain(..) {
            if at > now {
                kept.push((id, at));
                continue;
            }
            // Refused once it finished: too late to cancel, which is fine.
            if crate::support::operator_sets_status(&client, id, "cancelled")
                .await
                .is_ok()
            {
                cancelled += 1;
            }
        }
        cancels = kept;
        let mut waiting = Vec::new();
        for id in to_retry.drain(..) {
            match crate::support::status(&client, id).await.as_str() {
                "failed" => {
                    crate::support::operator_sets_status(&client, id, "pending")
                        .await
                        .expect("a failed job goes back to pending");
                    retried += 1;
                }
                _ => waiting.push(id),
            }
        }
        to_retry = waiting;

        // A PostgreSQL restart at 40% of the run, a Storage outage at 70%.
        if !restarted_db && done * 10 >= options.jobs * 4 {
            restarted_db = true;
            if options.progress {
                println!("restarting PostgreSQL at {done} jobs");
            }
            db.pg.stop(false).expect("stop postgres");
            tokio::time::sleep(Duration::from_secs(2)).await;
            db.pg.start(true).expect("start postgres");
            continue;
        }
        if !outage_done && outage_until.is_none() && done * 10 >= options.jobs * 7 {
            if options.progress {
                println!("Storage outage (503) for 5 s at {done} jobs");
            }
            storage.go_down(Fault::Reply(
                503,
                "upstream connect error or disconnect/reset before headers".into(),
            ));
            outage_until = Some(now + Duration::from_secs(5));
        }
        if outage_until.is_some_and(|t| t <= now) {
            storage.come_back();
            outage_until = None;
            outage_done = true;
        }
        // The double would otherwise hold every upload.
        if done >= forgotten_at + 1000 {
            storage.forget();
            forgotten_at = done;
        }

        if now >= next_sample {
            next_sample = now + options.sample_every;
            if done >= options.warm_up {
                if let Some(s) = sample(pid, &work_dir, &client, done).await {
                    samples.push(s);
                }
            }
            if options.progress && said.elapsed() >= Duration::from_secs(60) {
                said = Instant::now();
                println!(
                    "{done}/{} jobs finished, {:.0} s; daemon rss {:.1} MB, fds {}, children {}",
                    options.jobs,
                    started.elapsed().as_secs_f64(),
                    samples.last().map_or(0.0, |s| s.daemon_rss_mb),
                    samples.last().map_or(0.0, |s| s.fds),
                    samples.last().map_or(0.0, |s| s.children),
                );
            }
        }
        assert!(
            daemon.child.try_wait().unwrap().is_none(),
            "the daemon stopped:\n{}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let outcomes = client
        .query(
            "SELECT status || coalesce('/' || error_code, ''), count(*)
             FROM processing_jobs GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    let reused: i64 = client
        .query_one(
            "SELECT count(*) FROM audio_files WHERE reused_from_job_id IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let internal = client
        .query(
            "SELECT original_url || ': ' || coalesce(error_detail, '')
             FROM processing_jobs WHERE error_code = 'internal' LIMIT 10",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(60)).await;
    assert!(status.success(), "{}", daemon.log_text());
    Report {
        jobs: options.jobs,
        samples,
        outcomes,
        operator_retries: retried,
        cancels: cancelled,
        reused,
        internal,
        elapsed: started.elapsed(),
    }
}

/// One look at the daemon, or None while its database is away.
async fn sample(pid: i32, work_dir: &Path, client: &Client, done: usize) -> Option<Sample> {
    let connections: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'xtract_worker'",
            &[],
        )
        .await
        .ok()?
        .get(0);
    let tree = descendants(pid);
    let helper = tree.iter().copied().find(|p| {
        parent(*p) == Some(pid)
            && std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("ytdlp_helper"))
    });
    Some(Sample {
        done: done as f64,
        daemon_rss_mb: status_field(pid, "VmRSS:")? / 1024.0,
        helper_rss_mb: helper
            .and_then(|h| status_field(h, "VmRSS:"))
            .map_or(0.0, |kb| kb / 1024.0),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as f64,
        threads: status_field(pid, "Threads:")?,
        connections: connections as f64,
        work_files: count_files(work_dir) as f64,
        children: tree.len() as f64,
    })
}

/// A number from /proc/<pid>/status (kB for sizes).
fn status_field(pid: i32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command's closing parenthesis: state, then the parent.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Every living process below `pid`.
fn descendants(pid: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(parent) = parent(p) {
            children.entry(parent).or_default().push(p);
        }
    }
    let mut found = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children.get(&p).into_iter().flatten() {
            if crate::support::process_alive(*c) {
                found.push(*c);
            }
            todo.push(*c);
        }
    }
    found
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            _ => 1,
        })
        .sum()
}
