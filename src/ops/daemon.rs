//! `xtract run`: waits for its database, wires the queue, the notifier, the
//! pipeline and a storage backend together, and turns signals into an
//! orderly shutdown.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::compat;
use super::config::{Config, StorageKind};
use super::health::{Endpoint, HealthState};
use super::retention::{self, RetentionSettings};
use super::systemd;
use crate::db::{is_connection_error, migrate, schema, DbTarget};
use crate::domain::EgressRoutes;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::pipeline::MediaPipeline;
use crate::queue::admin;
use crate::queue::notifier::{
    listen_works, CancelRegistry, FinishedJobs, ListenError, ListenerState, Notifier, POOLER_ADVICE,
};
use crate::queue::worker::{Processor, Shutdown, Worker, WorkerSettings};
use crate::queue::Queue;
use crate::storage::supabase::SupabaseSettings;
use crate::storage::{AudioStore, LocalStorage, SupabaseStorage};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// Why `xtract run` ended in error: a start that failed (exit 1), or a
/// setting a service refused, such as a key Storage does not accept
/// (exit 2: the operator corrects the configuration; restarting will not
/// help).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("{0}")]
    Misconfigured(String),
}

impl From<RunError> for StartError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Start(e) => e,
            RunError::Misconfigured(m) => StartError(m),
        }
    }
}

impl WorkerSettings {
    pub fn from_config(c: &Config, exit_when_idle: bool) -> Self {
        WorkerSettings {
            concurrency: c.concurrency,
            poll_interval: c.poll_interval,
            lease: c.lease,
            heartbeat_interval: c.heartbeat_interval,
            shutdown_grace: c.shutdown_grace,
            retry_base: c.retry_base,
            retry_max: c.retry_max,
            job_timeout: c.job_timeout,
            max_pauses: c.max_pauses,
            platforms: Live::new(c.platforms.clone()),
            exit_when_idle,
        }
    }
}

/// How often a daemon waiting for its database says so in the log.
const SAY_WAITING_EVERY: Duration = Duration::from_secs(30);

/// Runs the daemon against `database_url` until a signal (or idleness with
/// `exit_when_idle`). A database that cannot be reached yet is waited for;
/// a mistake in the configuration or the schema stops the daemon at once.
pub async fn run(
    config: &Config,
    database_url: &str,
    exit_when_idle: bool,
) -> Result<(), RunError> {
    let target = DbTarget::parse(database_url).map_err(|e| StartError(e.to_string()))?;
    // Every task of the daemon beside the worker loop runs on this tracker
    // and stops with this one token; the daemon waits for all of them.
    let tasks = Tasks::new();
    // A misspelt setting is silently a default: say so, once.
    for (name, nearest) in super::config::unknown_settings() {
        tracing::warn!("{}", super::reference::unknown_sentence(&name, nearest));
    }
    let result = start_and_serve(config, target, exit_when_idle, &tasks).await;
    tasks.stop().await;
    tracing::info!("xtract stopped");
    result
}

/// The daemon's own tasks (listener, health endpoint, supervision,
/// retention, signals): one tracker, one token.
#[derive(Clone)]
pub struct Tasks {
    pub tracker: TaskTracker,
    pub stop: CancellationToken,
}

impl Tasks {
    pub fn new() -> Self {
        Tasks {
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
        }
    }

    /// Stops every task and waits for them to end.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Default for Tasks {
    fn default() -> Self {
        Self::new()
    }
}

async fn start_and_serve(
    config: &Config,
    target: DbTarget,
    exit_when_idle: bool,
    tasks: &Tasks,
) -> Result<(), RunError> {
    // From the first moment: a stop while waiting for the database is a
    // clean exit, not a lost signal.
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| StartError(format!("cannot install signal handlers: {e}")))?;
    let health = match config.health_addr {
        Some(addr) => {
            let endpoint = Endpoint::start(addr, &config.worker_id, tasks)
                .await
                .map_err(|e| {
                    StartError(format!("XTRACT_HEALTH_ADDR: cannot listen on {addr}: {e}"))
                })?;
            tracing::info!("health and metrics on http://{addr}/health and /metrics");
            Some(endpoint)
        }
        None => None,
    };
    // Folders are configuration: checked before any wait.
    std::fs::create_dir_all(&config.work_dir).map_err(|e| {
        StartError(format!(
            "XTRACT_WORK_DIR: cannot use {}: {e}",
            config.work_dir.display()
        ))
    })?;
    let backend = match config.storage {
        StorageKind::Local => {
            Backend::Local(LocalStorage::new(&config.local_storage_dir).map_err(|e| {
                StartError(format!(
                    "XTRACT_LOCAL_STORAGE_DIR: cannot use {}: {e}",
                    config.local_storage_dir.display()
                ))
            })?)
        }
        StorageKind::Supabase => Backend::Supabase(
            config
                .supabase
                .clone()
                .map_err(|e| RunError::Misconfigured(e.to_string()))?,
        ),
    };
    let database = wait_for("the database", &mut signals, health.as_ref(), || {
        prepare_database(&target, config)
    })
    .await?;
    if database.is_none() {
        return Ok(());
    }
    match backend {
        Backend::Local(store) => {
            tracing::info!("storing audio under {}", store.root().display());
            let started = Started::new(signals, health, tasks);
            Ok(serve(config, target, store, exit_when_idle, started).await?)
        }
        Backend::Supabase(settings) => {
            let reached = wait_for("Supabase Storage", &mut signals, health.as_ref(), || {
                reach_storage(&settings)
            })
            .await?;
            let Some(store) = reached else {
                return Ok(());
            };
            tracing::info!(
                bucket = %store.bucket().id,
                public = store.bucket().public,
                key = %store.key_kind().describe(),
                "storing audio in Supabase Storage"
            );
            let background = store.clone();
            let started = Started::new(signals, health, tasks);
            let result = serve(config, target, store, exit_when_idle, started).await;
            // Terminations of uploads that cancelled jobs left behind.
            background.finish(Duration::from_secs(10)).await;
            Ok(result?)
        }
    }
}

/// Where the audio goes, as configured; Supabase Storage is reached once
/// the database is.
enum Backend {
    Local(LocalStorage),
    Supabase(SupabaseSettings),
}

/// Reaches Supabase Storage and reads the bucket, once. Storage that cannot
/// be reached or answers with a server error (an outage, a gateway still
/// starting) is worth waiting for; a key it refuses, a wrong URL or a
/// missing bucket is the operator's to correct.
async fn reach_storage(settings: &SupabaseSettings) -> Result<SupabaseStorage, NotReady> {
    SupabaseStorage::connect_once(settings).await.map_err(|e| {
        let what = format!(
            "Supabase Storage at {} (bucket '{}'): {e}",
            settings.url, settings.bucket
        );
        let what = match e.advice() {
            "" => what,
            advice => format!("{what} → {advice}"),
        };
        if e.is_transient() {
            NotReady::Unreachable(e.to_string())
        } else if e.is_configuration() {
            NotReady::Wrong(RunError::Misconfigured(what))
        } else {
            NotReady::Wrong(StartError(what).into())
        }
    })
}

/// What the daemon set up before it could reach its database.
pub struct Started {
    /// SIGTERM/SIGINT/SIGHUP, caught from the first moment.
    pub signals: Signals,
    /// `/health` and `/metrics`, when configured.
    pub health: Option<Endpoint>,
    pub tasks: Tasks,
}

impl Started {
    fn new(signals: Signals, health: Option<Endpoint>, tasks: &Tasks) -> Self {
        Started {
            signals,
            health,
            tasks: tasks.clone(),
        }
    }
}

/// Why a service (the database, Storage) is not ready for the daemon.
enum NotReady {
    /// It cannot be reached (down, starting up, a network not up yet):
    /// worth waiting for.
    Unreachable(String),
    /// Something only the operator can fix (the schema, a transaction
    /// pooler, a password, a storage key): waiting would not help.
    Wrong(RunError),
}

/// Tries `attempt` until the service `what` is ready for the daemon. While
/// it cannot be reached (a VM that boots before its database or during a
/// Storage outage, a maintenance window), waits with capped backoff and
/// says so: a log line now and then, systemd's STATUS=, `/health` 503.
/// READY=1 is sent only later, once the daemon listens. Returns None when
/// a signal stopped the daemon while it waited.
async fn wait_for<T, F, Fut>(
    what: &str,
    signals: &mut Signals,
    health: Option<&Endpoint>,
    mut attempt: F,
) -> Result<Option<T>, RunError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, NotReady>>,
{
    let mut delays = crate::queue::db_backoff();
    let since = tokio::time::Instant::now();
    let mut said: Option<tokio::time::Instant> = None;
    loop {
        let attempt = tokio::select! {
            attempt = attempt() => attempt,
            () = stop_signal(signals, what) => return Ok(None),
        };
        let problem = match attempt {
            Ok(ready) => {
                if said.is_some() {
                    tracing::info!(
                        "{what} is reachable after {:.0}s of waiting",
                        since.elapsed().as_secs_f64()
                    );
                }
                return Ok(Some(ready));
            }
            Err(NotReady::Wrong(e)) => return Err(e),
            Err(NotReady::Unreachable(problem)) => problem,
        };
        let status = format!("waiting for {what} ({problem})");
        systemd::notify(&format!("STATUS={status}"));
        if let Some(health) = health {
            health.waiting(&status);
        }
        if said.is_none_or(|t| t.elapsed() >= SAY_WAITING_EVERY) {
            tracing::warn!(
                "{status}; trying again with backoff (waited {:.0}s so far)",
                since.elapsed().as_secs_f64()
            );
            said = Some(tokio::time::Instant::now());
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            () = stop_signal(signals, what) => return Ok(None),
        }
    }
}

/// Waits for SIGTERM or SIGINT while the daemon is starting; a SIGHUP has
/// nothing to reload yet.
async fn stop_signal(signals: &mut Signals, what: &str) {
    loop {
        match signals.next().await {
            Some(SIGHUP) => tracing::info!("reload ignored: still waiting for {what}"),
            _ => {
                tracing::info!("stopped while waiting for {what}");
                return;
            }
        }
    }
}

/// The checks a daemon makes of its database before it starts. A check
/// that fails is told apart by whether the database can be reached now.
async fn prepare_database(target: &DbTarget, config: &Config) -> Result<(), NotReady> {
    reachable(target).await?;
    if let Err(e) = check_schema(target).await {
        return Err(why(target, e).await);
    }
    if let Err(e) = check_listen(target).await {
        return Err(why(target, e).await);
    }
    if let Err(e) = apply_settings(target, config).await {
        return Err(why(target, e).await);
    }
    Ok(())
}

/// Whether the database can be reached: a connection error (refused, the
/// server starting up or shutting down, a name that does not resolve yet)
/// is an outage; any other (a password, a database that does not exist) is
/// the operator's to fix.
async fn reachable(target: &DbTarget) -> Result<(), NotReady> {
    match target.connect_simple().await {
        Ok(_) => Ok(()),
        Err(e) if is_connection_error(&e) => Err(NotReady::Unreachable(e.to_string())),
        Err(e) => Err(NotReady::Wrong(
            StartError(format!("cannot connect to the database: {e}")).into(),
        )),
    }
}

/// A check failed: because the database went away meanwhile, or for good.
async fn why(target: &DbTarget, e: StartError) -> NotReady {
    match reachable(target).await {
        Err(unreachable @ NotReady::Unreachable(_)) => unreachable,
        _ => NotReady::Wrong(e.into()),
    }
}

/// Writes the limits the database enforces.
async fn apply_settings(target: &DbTarget, config: &Config) -> Result<(), StartError> {
    let client = target
        .connect_simple()
        .await
        .map_err(|e| StartError(format!("cannot connect to the database: {e}")))?;
    admin::set_max_pending_per_user(&client, config.max_pending_per_user)
        .await
        .map_err(|e| StartError(format!("XTRACT_MAX_PENDING_PER_USER: cannot store it: {e}")))?;
    if let (StorageKind::Supabase, Ok(supabase)) = (config.storage, &config.supabase) {
        admin::set_storage_bucket(&client, &supabase.bucket)
            .await
            .map_err(|e| {
                StartError(format!(
                    "XTRACT_STORAGE_BUCKET: cannot store it for the users' storage policy: {e}"
                ))
            })?;
    }
    Ok(())
}

/// A daemon that cannot hear notifications would run on the poll alone
/// without anyone noticing: refuse, and say why (a transaction pooler).
async fn check_listen(target: &DbTarget) -> Result<(), StartError> {
    match listen_works(target).await {
        Ok(_) => Ok(()),
        Err(e @ ListenError::NoDelivery(_)) => Err(StartError(format!(
            "LISTEN/NOTIFY does not work on this connection ({e}). {POOLER_ADVICE}"
        ))),
        Err(e) => Err(StartError(format!("cannot LISTEN on the database: {e}"))),
    }
}

async fn check_schema(target: &DbTarget) -> Result<(), StartError> {
    let client = target
        .connect_simple()
        .await
        .map_err(|e| StartError(format!("cannot connect to the database: {e}")))?;
    let missing = migrate::pending(&client)
        .await
        .map_err(|e| StartError(format!("cannot read the schema version: {e}")))?;
    if !missing.is_empty() {
        return Err(StartError(format!(
            "the database schema is not up to date (missing migrations {missing:?}): run `xtract migrate` first"
        )));
    }
    // Numbers are not enough: every table, column, trigger and privilege a
    // job's write-back needs, or no job could finish.
    let problems = schema::check(&client)
        .await
        .map_err(|e| StartError(format!("cannot read the database catalog: {e}")))?;
    if !problems.is_empty() {
        return Err(StartError(format!(
            "the database schema does not match what xtract needs: {}",
            schema::describe(&problems)
        )));
    }
    Ok(())
}

async fn serve<S: AudioStore + Clone>(
    config: &Config,
    target: DbTarget,
    store: S,
    exit_when_idle: bool,
    started: Started,
) -> Result<(), StartError> {
    let Started {
        signals,
        health,
        tasks,
    } = started;
    let metrics = Arc::new(match config.compat {
        Some(_) => Metrics::new().with_old_api(),
        None => Metrics::new(),
    });
    // Retention runs beside the worker with a connection of its own.
    if let Some(days) = config.retention_days {
        let pool = target.pool(1).map_err(|e| StartError(e.to_string()))?;
        let queue = Queue::new(pool, &config.worker_id, &config.egress_key);
        let settings = RetentionSettings {
            days,
            audio: config.retention_audio,
        };
        tasks.tracker.spawn(retention::run(
            queue,
            store.clone(),
            settings,
            metrics.clone(),
            tasks.stop.clone(),
        ));
    }
    // Names a session that keeps the queue's dead row versions from being
    // removed (once each, as a warning), with a connection of its own.
    let horizon_pool = target.pool(1).map_err(|e| StartError(e.to_string()))?;
    tasks.tracker.spawn(super::horizon::watch(
        horizon_pool,
        config.horizon_warn,
        tasks.stop.clone(),
    ));
    let pipeline_config = Live::new(pipeline_of(config));
    let pipeline = MediaPipeline::new(pipeline_config.clone(), store).map_err(|e| {
        StartError(format!(
            "XTRACT_WORK_DIR: cannot use {}: {e}",
            config.work_dir.display()
        ))
    })?;
    let settings = WorkerSettings::from_config(config, exit_when_idle);
    let platforms = settings.platforms.clone();
    let routes = Live::new(config.egress.routes());
    log_egresses(config);
    let running_config = config.clone();
    let reload_routes = routes.clone();
    // SIGHUP: the platform table, the egress pool and the pipeline's limits
    // and options are read again; running jobs finish with what they
    // started with (their egress included).
    let reload = move || match running_config.reload() {
        Ok(new) => {
            pipeline_config.set(pipeline_of(&new));
            platforms.set(new.platforms.clone());
            reload_routes.set(new.egress.routes());
            tracing::info!("configuration reloaded");
            log_egresses(&new);
            // `xtract tools upgrade` reloads after switching yt-dlp: say
            // which one new jobs now run.
            log_ytdlp(new.ytdlp.clone());
        }
        Err(e) => tracing::error!("reload failed, keeping the running configuration: {e}"),
    };
    // Signals around the worker: it only sees the shutdown they ask for.
    let shutdown = Shutdown::default();
    tasks.tracker.spawn(handle_signals(
        signals,
        shutdown.clone(),
        reload,
        tasks.stop.clone(),
    ));
    let result = run_worker(
        config,
        target,
        pipeline,
        settings,
        routes,
        metrics,
        shutdown,
        health.as_ref(),
        &tasks,
    )
    .await;
    drop(health);
    result
}

/// Logs the yt-dlp new jobs run (version, and where the venv symlink
/// leads), without holding up the caller. On reload only: `doctor` tells it
/// at any time, and a start need not pay for a Python start-up.
fn log_ytdlp(program: std::path::PathBuf) {
    tokio::spawn(async move {
        tracing::info!("{}", crate::ops::tools::describe_ytdlp(&program).await);
    });
}

/// The pipeline's settings, with what the installed yt-dlp can do (read
/// again on reload: `xtract tools upgrade` reloads after switching).
fn pipeline_of(config: &Config) -> crate::pipeline::PipelineConfig {
    let mut pipeline = config.pipeline();
    pipeline.strategies.can_impersonate = crate::pipeline::ytdlp::can_impersonate(&config.ytdlp);
    pipeline
}

/// Says where platform requests leave from (never a proxy's password), and
/// which platforms no egress here serves.
fn log_egresses(config: &Config) {
    let pool = &config.egress;
    let all: Vec<String> = pool.all().iter().map(|e| e.describe()).collect();
    tracing::info!("egresses: {}", all.join(", "));
    for platform in pool.unserved() {
        tracing::warn!(
            "no egress of this daemon serves {platform}: its jobs wait for another daemon (platforms file, [egress.*] platforms)"
        );
    }
}

/// Starts the notifier and the worker loop for any job body, with systemd
/// supervision; returns when the worker has drained (`shutdown`, or
/// idleness with `exit_when_idle`). Its tasks run on `tasks` and stop with
/// it. The claim follows `routes`, the egress pool's (platform, egress)
/// pairs, which a reload replaces.
#[allow(clippy::too_many_arguments)]
pub async fn run_worker<P: Processor>(
    config: &Config,
    target: DbTarget,
    processor: P,
    settings: WorkerSettings,
    routes: Live<EgressRoutes>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    health: Option<&Endpoint>,
    tasks: &Tasks,
) -> Result<(), StartError> {
    let pool = target
        .pool(settings.concurrency + 4)
        .map_err(|e| StartError(e.to_string()))?;
    let queue = Queue::new(pool, &config.worker_id, &config.egress_key).with_routes(routes);
    let wake = Arc::new(Notify::new());
    let cancels = CancelRegistry::default();
    let listener_state = Arc::new(ListenerState::default());
    // The old-API endpoint's requests wait for their jobs to finish.
    let finished = config.compat.as_ref().map(|_| FinishedJobs::default());
    let notifier = Notifier {
        target: target.clone(),
        wake: wake.clone(),
        cancels: cancels.clone(),
        state: listener_state.clone(),
        ping_interval: config.poll_interval,
        finished: finished.clone(),
    };
    // The listener outlives the claiming: running jobs still hear cancels
    // while they drain. It stops with the other tasks, after the worker.
    let stop_tasks = tasks.stop.child_token();
    tasks.tracker.spawn(notifier.run(stop_tasks.clone()));
    if let (Some(settings), Some(finished)) = (&config.compat, finished) {
        // New requests stop with the claiming; waiting ones are answered
        // once the worker has drained (their jobs may finish meanwhile).
        let stops = compat::Stops {
            accepting: shutdown.stop_claiming.clone(),
            waiting: stop_tasks.clone(),
        };
        compat::start(
            config,
            settings,
            &target,
            finished,
            metrics.clone(),
            stops,
            tasks,
        )
        .await?;
    }
    tracing::info!(
        worker = %config.worker_id,
        concurrency = settings.concurrency,
        "xtract is running"
    );
    let worker = Worker::new(
        queue.clone(),
        processor,
        settings,
        wake,
        cancels,
        metrics.clone(),
    );
    if let Some(health) = health {
        health.running(HealthState {
            listener: listener_state.clone(),
            metrics: metrics.clone(),
            queue: queue.clone(),
            worker_id: config.worker_id.clone(),
        });
    }
    tasks.tracker.spawn(systemd::supervise(
        systemd::Watched {
            queue,
            metrics,
            loop_turns: worker.loop_turns(),
            listener: listener_state,
            poll: config.poll_interval,
        },
        stop_tasks.clone(),
    ));
    worker.run(shutdown).await;
    systemd::notify("STOPPING=1");
    stop_tasks.cancel();
    Ok(())
}

/// First SIGTERM/SIGINT: stop claiming and let running jobs finish within
/// the grace period. A second one: stop the jobs now (they are released).
/// SIGHUP: reload the configuration. Ends with the daemon's other tasks.
async fn handle_signals(
    mut signals: Signals,
    shutdown: Shutdown,
    reload: impl Fn() + Send + 'static,
    stop: CancellationToken,
) {
    let mut seen = 0;
    loop {
        let signal = tokio::select! {
            s = signals.next() => match s {
                Some(s) => s,
                None => return,
            },
            _ = stop.cancelled() => return,
        };
        if signal == SIGHUP {
            reload();
            continue;
        }
        seen += 1;
        if seen == 1 {
            tracing::info!(
                signal,
                "shutting down: no new jobs; running jobs may finish"
            );
            shutdown.stop_claiming.cancel();
        } else {
            tracing::info!(signal, "second signal: stopping running jobs now");
            shutdown.stop_jobs.cancel();
        }
    }
}
