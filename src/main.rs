use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use uuid::Uuid;

use xtract::ops::config::{Config, ConfigError};
use xtract::ops::{commands, daemon, dev, doctor, jobs, logging, tools};

/// Turns social-media video links queued in Supabase into audio files.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Read the environment from this file first (e.g.
    /// /etc/xtract/xtract.env, the service's); variables already set win.
    #[arg(long, global = true, value_name = "FILE")]
    env_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (needs DATABASE_URL; `xtract dev` runs it on a
    /// throwaway local database).
    Run {
        /// Exit once no job is pending or processing.
        #[arg(long)]
        exit_when_idle: bool,
    },
    /// Apply the schema migrations of sql/ (idempotent).
    Migrate,
    /// Insert a job exactly as a frontend would.
    Enqueue {
        url: String,
        #[arg(long)]
        user: Uuid,
        /// Wait until the job is finished, print its row, exit non-zero
        /// unless it completed.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Local development: a throwaway PostgreSQL, local storage, the daemon
    /// in the foreground.
    Dev {
        /// Serve a generated clip on 127.0.0.1, enqueue it, print the
        /// finished rows and exit.
        #[arg(long)]
        demo: bool,
    },
    /// Check this machine's setup: configuration, database, LISTEN/NOTIFY,
    /// schema, yt-dlp, ffmpeg, JavaScript runtime, storage. Exits non-zero
    /// when a check fails.
    Doctor,
    /// List, show, retry and cancel jobs.
    Jobs(jobs::JobsArgs),
    /// Keep yt-dlp fresh: upgrade, roll back, show what is installed.
    #[command(subcommand)]
    Tools(ToolsCommand),
}

#[derive(Subcommand)]
enum ToolsCommand {
    /// Build a virtualenv with the newest yt-dlp of the channel (with its
    /// extras, deno and XTRACT_YTDLP_PLUGINS), check it, switch to it and
    /// reload the daemon. Exits non-zero when it kept the old one.
    Upgrade {
        #[command(flatten)]
        place: ToolsPlace,
        /// stable or nightly (default: XTRACT_YTDLP_CHANNEL, else nightly).
        #[arg(long)]
        channel: Option<String>,
        /// Install even a release that was rolled back.
        #[arg(long)]
        force: bool,
        /// The Python that builds virtualenvs.
        #[arg(long, default_value = "python3")]
        python: PathBuf,
        /// Do not reload the daemon after switching.
        #[arg(long)]
        no_reload: bool,
    },
    /// Go back to the previous virtualenv (the upgrade then skips the one
    /// left until a newer release) and reload the daemon.
    Rollback {
        #[command(flatten)]
        place: ToolsPlace,
        #[arg(long)]
        no_reload: bool,
    },
    /// List the virtualenvs: in use, previous, rolled back.
    Status {
        #[command(flatten)]
        place: ToolsPlace,
    },
}

#[derive(clap::Args)]
struct ToolsPlace {
    /// The tools folder: venvs/, and the venv symlink XTRACT_YTDLP points
    /// through (/opt/xtract/venv/bin/yt-dlp).
    #[arg(long, default_value = "/opt/xtract")]
    dir: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(path) = &cli.env_file {
        if let Err(e) = dotenvy::from_path(path) {
            eprintln!("xtract: --env-file {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xtract: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The doctor reports a configuration mistake as one of its checks
    // instead of stopping at it.
    if let Command::Doctor = cli.command {
        return runtime.block_on(doctor_command(Config::from_env()));
    }
    // Commands that run jobs need yt-dlp and ffmpeg; the others do not.
    let runs_jobs = matches!(cli.command, Command::Run { .. } | Command::Dev { .. });
    let config = match Config::from_env().and_then(|c| {
        if runs_jobs {
            c.require_tools()?;
        }
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xtract: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_format);
    match runtime.block_on(execute(cli.command, config)) {
        Ok(code) => code,
        Err(message) => {
            // One line: the log goes to stderr too.
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the doctor's report; fails when a check failed.
async fn doctor_command(config: Result<Config, ConfigError>) -> ExitCode {
    let report = doctor::check_all(config).await;
    print!("{report}");
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn tools_command(command: ToolsCommand, config: &Config) -> Result<ExitCode, String> {
    let mut say = |line: &str| println!("{line}");
    let (reload, dir) = match command {
        ToolsCommand::Status { place } => {
            for line in tools::status(&place.dir).map_err(|e| e.to_string())? {
                println!("{line}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        ToolsCommand::Rollback { place, no_reload } => {
            tools::rollback(&place.dir, &mut say).map_err(|e| e.to_string())?;
            (!no_reload, place.dir)
        }
        ToolsCommand::Upgrade {
            place,
            channel,
            force,
            python,
            no_reload,
        } => {
            let channel = match channel {
                Some(c) => c.parse().map_err(|e| format!("--channel: {e}"))?,
                None => config.ytdlp_channel,
            };
            let options = tools::UpgradeOptions {
                dir: place.dir.clone(),
                channel,
                plugins: config.ytdlp_plugins.clone(),
                python,
                force,
            };
            match tools::upgrade(&options, &mut say).await {
                Ok(tools::Upgraded::Switched { .. }) => (!no_reload, place.dir),
                Ok(_) => return Ok(ExitCode::SUCCESS),
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    let expected = dir.join("venv/bin/yt-dlp");
    if config.ytdlp != expected {
        println!(
            "note: XTRACT_YTDLP is {}, not {}: the daemon does not run this virtualenv",
            config.ytdlp.display(),
            expected.display()
        );
    }
    if reload {
        println!("{}", tools::reload_daemons().await);
    }
    Ok(ExitCode::SUCCESS)
}

fn database_url(config: &Config) -> Result<String, String> {
    config
        .database_url
        .as_ref()
        .map(|s| s.expose().to_string())
        .ok_or_else(|| {
            ConfigError {
                var: "DATABASE_URL",
                reason:
                    "not set (see .env.example; `xtract dev` runs on a throwaway local database)"
                        .into(),
            }
            .to_string()
        })
}

async fn execute(command: Command, config: Config) -> Result<ExitCode, String> {
    match command {
        // No quiet fallback to a throwaway database: a service started
        // before its env file was filled in must fail, not look healthy.
        Command::Run { exit_when_idle } => {
            daemon::run(&config, &database_url(&config)?, exit_when_idle)
                .await
                .map_err(|e| e.to_string())?
        }
        Command::Dev { demo } => dev::dev(config, demo).await.map_err(|e| e.to_string())?,
        Command::Doctor => return Ok(doctor_command(Ok(config)).await),
        Command::Jobs(args) => {
            return jobs::run(&database_url(&config)?, args)
                .await
                .map_err(|e| e.to_string())
        }
        Command::Tools(command) => return tools_command(command, &config).await,
        Command::Migrate => {
            let applied = commands::migrate(&database_url(&config)?)
                .await
                .map_err(|e| e.to_string())?;
            if applied.is_empty() {
                println!("schema is up to date");
            } else {
                println!("applied migrations {applied:?}");
            }
        }
        Command::Enqueue {
            url,
            user,
            wait,
            timeout,
        } => {
            let wait = wait.then(|| Duration::from_secs(timeout));
            let (id, waited) = commands::enqueue(&database_url(&config)?, &url, user, wait)
                .await
                .map_err(|e| e.to_string())?;
            match waited {
                None => println!("{id}"),
                Some(w) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&w.row).unwrap_or_default()
                    );
                    if !w.succeeded {
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
