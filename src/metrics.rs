//! Prometheus metrics of one daemon. The worker records what happens to
//! jobs; queue depth and platform pauses are read from the database when
//! scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::domain::Platform;

/// Every platform label a job can carry.
const PLATFORMS: [&str; 5] = [
    Platform::Instagram.as_str(),
    Platform::TikTok.as_str(),
    Platform::YouTube.as_str(),
    Platform::Other.as_str(),
    "unknown",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlatformLabel {
    pub platform: String,
}

/// A platform and the egress its requests went out through (`none` when
/// no request left: audio reused, a local link).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EgressLabels {
    pub platform: String,
    pub egress: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub platform: String,
    pub error_code: String,
    /// The egress of the attempt (see [`EgressLabels`]).
    pub egress: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetentionLabel {
    /// `jobs` or `audio`.
    pub what: String,
}

/// An HTTP status the old API answered with.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpStatusLabel {
    pub status: String,
}

/// The old service's HTTP API (XTRACT_COMPAT_ADDR): registered only when
/// the endpoint is on.
pub struct OldApiMetrics {
    /// `POST /extract-audio` requests answered, by HTTP status.
    pub requests: Family<HttpStatusLabel, Counter>,
    /// Jobs inserted by the endpoint (not the retries that waited for one).
    pub jobs_created: Counter,
    /// Requests held open now, waiting for their job.
    pub waiting: Gauge,
    /// When the last request arrived (Unix seconds; 0: none since start).
    pub last_request: Gauge,
}

pub struct Metrics {
    pub registry: Registry,
    pub claimed: Family<PlatformLabel, Counter>,
    /// Count with [`Metrics::count_completed`], which keeps the total.
    pub completed: Family<EgressLabels, Counter>,
    /// Count with [`Metrics::count_failed`], which keeps the total.
    pub failed: Family<OutcomeLabels, Counter>,
    pub retried: Family<OutcomeLabels, Counter>,
    pub duration: Family<PlatformLabel, Histogram>,
    pub pickup_latency: Histogram,
    pub running: Gauge,
    pub reaped: Counter,
    pub listener_up: Gauge,
    pub listener_reconnects: Gauge,
    pub queue_depth: Family<StatusLabel, Gauge>,
    pub platform_paused: Family<EgressLabels, Gauge>,
    pub platform_pauses: Family<EgressLabels, Counter>,
    pub retention_deleted: Family<RetentionLabel, Counter>,
    pub extractor_outdated: Family<PlatformLabel, Counter>,
    /// All completed and failed jobs, whatever their labels (the `egress`
    /// label takes any name, so the families cannot be summed by listing
    /// their label sets). Not exported: `/health` and systemd read them.
    completed_sum: Counter,
    failed_sum: Counter,
    /// Set by [`Metrics::with_old_api`].
    pub old_api: Option<OldApiMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("xtract");
        let duration = Family::<PlatformLabel, Histogram>::new_with_constructor(|| {
            // Seconds: from a quick copy to a long download.
            Histogram::new([
                0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
            ])
        });
        let pickup_latency = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0,
        ]);
        let m = Metrics {
            registry: Registry::default(),
            claimed: Family::default(),
            completed: Family::default(),
            failed: Family::default(),
            completed_sum: Counter::default(),
            failed_sum: Counter::default(),
            retried: Family::default(),
            duration,
            pickup_latency,
            running: Gauge::default(),
            reaped: Counter::default(),
            listener_up: Gauge::default(),
            listener_reconnects: Gauge::default(),
            queue_depth: Family::default(),
            platform_paused: Family::default(),
            platform_pauses: Family::default(),
            retention_deleted: Family::default(),
            extractor_outdated: Family::default(),
            old_api: None,
        };
        registry.register(
            "jobs_claimed",
            "Jobs claimed by this daemon, by platform (as detected when the job was added)",
            m.claimed.clone(),
        );
        registry.register(
            "jobs_completed",
            "Jobs completed, by platform and the egress of their download (none: no request left)",
            m.completed.clone(),
        );
        registry.register(
            "jobs_failed",
            "Jobs failed for good, by platform, error code and the egress of the last attempt",
            m.failed.clone(),
        );
        registry.register(
            "jobs_retried",
            "Jobs put back to pending for a retry or a platform pause, by platform, error code and egress",
            m.retried.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "Time from claim to write-back",
            m.duration.clone(),
        );
        registry.register(
            "pickup_latency_seconds",
            "Time from a job becoming ready to its claim",
            m.pickup_latency.clone(),
        );
        registry.register(
            "jobs_running",
            "Jobs running in this daemon now",
            m.running.clone(),
        );
        registry.register(
            "jobs_reaped",
            "Jobs taken back from workers that stopped heart-beating",
            m.reaped.clone(),
        );
        registry.register(
            "listener_up",
            "1 while the LISTEN connection is up",
            m.listener_up.clone(),
        );
        registry.register(
            "listener_reconnects",
            "Times the LISTEN connection was re-established",
            m.listener_reconnects.clone(),
        );
        registry.register(
            "queue_jobs",
            "Jobs waiting (pending) or running (processing) in the whole database",
            m.queue_depth.clone(),
        );
        registry.register(
            "platform_paused",
            "1 while a platform is paused on one of this daemon's egresses, per platform and egress",
            m.platform_paused.clone(),
        );
        registry.register(
            "platform_pauses",
            "Pauses started by this daemon after a rate limit, per platform and egress",
            m.platform_pauses.clone(),
        );
        registry.register(
            "retention_deleted",
            "Finished jobs (what=jobs) and audio rows with their objects (what=audio) deleted by retention",
            m.retention_deleted.clone(),
        );
        registry.register(
            "extractor_outdated",
            "Job attempts that failed because yt-dlp no longer understands the site (error_code extractor_outdated): upgrade yt-dlp",
            m.extractor_outdated.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Adds the old API's metrics (the endpoint is on).
    pub fn with_old_api(mut self) -> Self {
        let m = OldApiMetrics {
            requests: Family::default(),
            jobs_created: Counter::default(),
            waiting: Gauge::default(),
            last_request: Gauge::default(),
        };
        self.registry.register(
            "old_api_requests",
            "POST /extract-audio requests (the old service's API) answered, by HTTP status",
            m.requests.clone(),
        );
        self.registry.register(
            "old_api_jobs_created",
            "Jobs inserted through the old service's API",
            m.jobs_created.clone(),
        );
        self.registry.register(
            "old_api_waiting",
            "Old-API requests held open now, waiting for their job",
            m.waiting.clone(),
        );
        self.registry.register(
            "old_api_last_request_timestamp_seconds",
            "When the last old-API request arrived (Unix time; 0: none since this daemon started)",
            m.last_request.clone(),
        );
        self.old_api = Some(m);
        self
    }

    /// Jobs claimed since start, all platforms.
    pub fn claimed_total(&self) -> u64 {
        sum_by_platform(&self.claimed)
    }

    /// A job completed.
    pub fn count_completed(&self, labels: &EgressLabels) {
        self.completed.get_or_create(labels).inc();
        self.completed_sum.inc();
    }

    /// A job failed for good.
    pub fn count_failed(&self, labels: &OutcomeLabels) {
        self.failed.get_or_create(labels).inc();
        self.failed_sum.inc();
    }

    /// Jobs completed since start, all platforms (for `/health` and
    /// systemd's status line).
    pub fn completed_total(&self) -> u64 {
        self.completed_sum.get()
    }

    /// Jobs failed for good since start, all platforms and codes.
    pub fn failed_total(&self) -> u64 {
        self.failed_sum.get()
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn sum_by_platform(family: &Family<PlatformLabel, Counter>) -> u64 {
    PLATFORMS
        .iter()
        .filter_map(|p| {
            family
                .get(&PlatformLabel {
                    platform: p.to_string(),
                })
                .map(|c| c.get())
        })
        .sum()
}
