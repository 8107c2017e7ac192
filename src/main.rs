use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use uuid::Uuid;

use xtract::ops::cli::{self, CliError, Kind};
use xtract::ops::config::{Config, ConfigError};
use xtract::ops::jobs::JobsError;
use xtract::ops::{commands, daemon, dev, doctor, isolation, jobs, logging, tools};

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
    /// Run the daemon (needs DATABASE_URL; `xtract dev` runs it on a local
    /// development database).
    Run {
        /// Exit once no job is pending or processing.
        #[arg(long)]
        exit_when_idle: bool,
    },
    /// Apply the schema migrations of sql/ (idempotent).
    Migrate,
    /// Insert a job as a frontend would, as the operator (no per-user limit).
    Enqueue {
        url: String,
        /// The user's id in Supabase Auth (a UUID).
        #[arg(long, value_parser = cli::user_id)]
        user: Uuid,
        /// Wait until the job is finished, print its row, exit non-zero
        /// unless it completed.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// The audio format (m4a, mp3, opus, original); default: the daemon's.
        #[arg(long)]
        format: Option<String>,
        /// The bitrate in kb/s (32-320) for m4a, mp3 or opus.
        #[arg(long)]
        bitrate: Option<i32>,
    },
    /// Local development: a local PostgreSQL under .xtract-dev (kept between
    /// runs), local storage, the daemon in the foreground.
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
    /// Print a reference page generated from the code (docs/configuration.md,
    /// docs/errors.md, docs/cli.md are these, checked by the tests).
    Docs {
        #[arg(value_enum)]
        page: DocsPage,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DocsPage {
    /// Every setting: docs/configuration.md.
    Config,
    /// Every error code: docs/errors.md.
    Errors,
    /// Every command and flag: docs/cli.md.
    Cli,
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
    /// List the virtualenvs (in use, previous, rolled back) and, per
    /// platform, the build that serves it, whether it is broken and since
    /// when, and what was tried.
    Status {
        #[command(flatten)]
        place: ToolsPlace,
    },
    /// Pin a platform to a build (a virtualenv `tools status` lists): it
    /// runs that build, and nothing is done about it automatically. `--none`
    /// unpins it.
    Pin {
        #[command(flatten)]
        place: ToolsPlace,
        /// tiktok, instagram or youtube.
        #[arg(value_parser = cli::platform)]
        platform: String,
        /// The build's name (venvs/<name>).
        #[arg(required_unless_present = "none", conflicts_with = "none")]
        build: Option<String>,
        /// Unpin: the daemons choose its build again.
        #[arg(long)]
        none: bool,
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // Pages generated from the code: no configuration, no secrets.
    if let Command::Docs { page } = cli.command {
        print!(
            "{}",
            match page {
                DocsPage::Config => xtract::ops::reference::configuration_page(),
                DocsPage::Errors => xtract::ops::reference::errors_page(),
                DocsPage::Cli => cli_page(),
            }
        );
        return ExitCode::SUCCESS;
    }
    // Before any secret is read: the processes jobs start run as our user,
    // and must not read our environment or memory through /proc.
    if let Err(e) = isolation::protect_process() {
        eprintln!("xtract: cannot make the process non-dumpable (prctl): {e}");
        return ExitCode::FAILURE;
    }
    if let Some(path) = &cli.env_file {
        // One env-file mechanism: --env-file names the file XTRACT_ENV_FILE
        // would, so the start and every reload (SIGHUP) read the same one.
        if let Err(e) = dotenvy::from_path_iter(path) {
            let e = CliError::new(
                Kind::Usage,
                "--env-file",
                format!("{}: {e}", path.display()),
            )
            .fix("give the path of a readable env file (KEY=value lines)");
            eprintln!("{e}");
            return e.kind.exit_code();
        }
        std::env::set_var("XTRACT_ENV_FILE", path);
    }
    let config = Config::from_env();
    // The configuration holds the secrets now; the environment need not.
    // Here, before the runtime starts its threads. (A doctor reporting a
    // configuration mistake reads the environment again for its checks.)
    if config.is_ok() {
        isolation::forget_secret_variables();
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
        return runtime.block_on(doctor_command(config));
    }
    // Commands that run jobs need yt-dlp and ffmpeg; the others do not.
    let runs_jobs = matches!(cli.command, Command::Run { .. } | Command::Dev { .. });
    let config = match config.and_then(|c| {
        if runs_jobs {
            c.require_tools()?;
        }
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            let e = CliError::config(&e);
            eprintln!("{e}");
            return e.kind.exit_code();
        }
    };
    logging::init(config.log_format);
    match runtime.block_on(execute(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            e.kind.exit_code()
        }
    }
}

/// `docs/cli.md`: every command's `--help`, as clap prints it.
fn cli_page() -> String {
    fn walk(cmd: &mut clap::Command, path: &str, out: &mut String) {
        let mut cmd = cmd.clone().bin_name(path.to_string());
        let help = cmd.render_long_help().to_string();
        out.push_str(&format!(
            "## `{path}`\n\n```text\n{}\n```\n\n",
            help.trim_end()
        ));
        let mut subs: Vec<clap::Command> = cmd.get_subcommands().cloned().collect();
        for sub in &mut subs {
            if sub.get_name() == "help" {
                continue;
            }
            let name = format!("{path} {}", sub.get_name());
            walk(sub, &name, out);
        }
    }
    let mut out = String::from(
        "# Command-line reference\n\n\
         Every `xtract` command and flag, as its `--help` prints it. Generated \
         from the code: run `xtract docs cli > docs/cli.md` after changing the \
         command line (`tests/docs.rs` fails until then). Every command fails \
         in one line, `xtract: what: why → what to do`, with an exit code by \
         kind: 0 done; 1 the work failed (a job did not complete, a check \
         failed); 2 a mistake in the command line, the configuration or the \
         input; 3 a service could not be reached; 4 `enqueue --wait` timed out.\n\n",
    );
    let mut root = Cli::command();
    root.build();
    walk(&mut root, "xtract", &mut out);
    out
}

/// A command line clap refused, in the one-line style of every other
/// failure (`xtract: what: why → what to do`, exit 2); `--help` and
/// `--version` print as clap prints them.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    // clap's own words up to its usage lines, on one line, unstyled.
    let rendered = e.render().to_string();
    let why = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("error: "))
        .collect::<Vec<_>>()
        .join(" ");
    let what = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.split_whitespace().next().unwrap_or("").to_string(),
        _ => "command line".to_string(),
    };
    // The subcommand's own help, when the line named one.
    let command = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .filter(|a| Cli::command().find_subcommand(a).is_some());
    let help = match command {
        Some(c) => format!("see xtract {c} --help"),
        None => "see xtract --help".to_string(),
    };
    let e = CliError::new(Kind::Usage, what, why).fix(help);
    eprintln!("{e}");
    e.kind.exit_code()
}

/// Prints the doctor's report; fails when a check failed.
async fn doctor_command(config: Result<Config, ConfigError>) -> ExitCode {
    let report = doctor::check_all(config).await;
    print!("{report}");
    match report.failure_kind() {
        Some(kind) => kind.exit_code(),
        None => ExitCode::SUCCESS,
    }
}

async fn tools_command(command: ToolsCommand, config: &Config) -> Result<ExitCode, CliError> {
    let failed = |what: &str, e: String| CliError::new(Kind::Failed, format!("tools {what}"), e);
    let mut say = |line: &str| println!("{line}");
    let (reload, dir) = match command {
        ToolsCommand::Status { place } => {
            for line in tools::status(&place.dir).map_err(|e| failed("status", e.to_string()))? {
                println!("{line}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        ToolsCommand::Pin {
            place,
            platform,
            build,
            none: _,
        } => {
            let said = tools::pin(&place.dir, &platform, build.as_deref())
                .map_err(|e| failed("pin", e.to_string()))?;
            println!("{said}");
            return Ok(ExitCode::SUCCESS);
        }
        ToolsCommand::Rollback { place, no_reload } => {
            tools::rollback(&place.dir, &mut say).map_err(|e| failed("rollback", e.to_string()))?;
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
                Some(c) => c.parse().map_err(|e| {
                    CliError::new(Kind::Usage, "tools upgrade", format!("--channel: {e}"))
                        .fix("stable or nightly")
                })?,
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
                Err(e) => return Err(failed("upgrade", e.to_string())),
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

fn database_url(config: &Config, command: &str) -> Result<String, CliError> {
    config
        .database_url
        .as_ref()
        .map(|s| s.expose().to_string())
        .ok_or_else(|| {
            CliError::new(Kind::Usage, command, "DATABASE_URL is not set").fix(
                "set it in the environment or the env file (see .env.example); \
                 `xtract dev` runs on a throwaway local database",
            )
        })
}

async fn execute(command: Command, config: Config) -> Result<ExitCode, CliError> {
    match command {
        // No quiet fallback to a throwaway database: a service started
        // before its env file was filled in must fail, not look healthy.
        Command::Run { exit_when_idle } => {
            let url = database_url(&config, "run")?;
            daemon::run(&config, &url, exit_when_idle)
                .await
                .map_err(|e| match e {
                    daemon::RunError::Start(e) => CliError::new(Kind::Failed, "run", e.0),
                    daemon::RunError::Misconfigured(m) => CliError::new(Kind::Usage, "run", m),
                })?
        }
        Command::Dev { demo } => dev::dev(config, demo)
            .await
            .map_err(|e| CliError::new(Kind::Failed, "dev", e.0))?,
        Command::Doctor => return Ok(doctor_command(Ok(config)).await),
        Command::Jobs(args) => {
            let url = database_url(&config, "jobs")?;
            return jobs::run(&url, args).await.map_err(|e| match e {
                JobsError::Db(e) => CliError::db("jobs", &e),
                JobsError::NotFound(id) => {
                    CliError::new(Kind::Failed, "jobs", format!("no job with id {id}"))
                        .fix("check the id (xtract jobs lists them)")
                }
                other => CliError::new(Kind::Failed, "jobs", other.to_string()),
            });
        }
        Command::Tools(command) => return tools_command(command, &config).await,
        // Answered before the configuration is read.
        Command::Docs { .. } => {}
        Command::Migrate => {
            let url = database_url(&config, "migrate")?;
            let outcome = commands::migrate_with_outcome(&url)
                .await
                .map_err(|e| CliError::db("migrate", &e))?;
            if outcome.applied.is_empty() {
                println!("schema is up to date");
            }
            for m in &outcome.applied {
                println!("applied {:03} {}", m.version, m.name);
            }
            if !outcome.skipped_supabase_only.is_empty() {
                let names: Vec<String> = outcome
                    .skipped_supabase_only
                    .iter()
                    .map(|m| format!("{:03}", m.version))
                    .collect();
                println!(
                    "skipped {} (the Supabase security layer: this database has no `auth` schema; they apply on a Supabase project)",
                    names.join(", ")
                );
            }
        }
        Command::Enqueue {
            url,
            user,
            wait,
            timeout,
            format,
            bitrate,
        } => {
            commands::check_link(&config, &url).map_err(|why| {
                CliError::new(Kind::Usage, "enqueue", why)
                    .fix("the daemon would refuse this link; give a link to one video")
            })?;
            let database = database_url(&config, "enqueue")?;
            let waiting = wait.then(|| Duration::from_secs(timeout));
            let choice = commands::AudioChoice {
                format,
                bitrate_kbps: bitrate,
            };
            // With --wait, what happens to the job as it happens (stderr:
            // stdout keeps the final row for scripts).
            let follow = |row: &serde_json::Value| {
                if !wait {
                    return;
                }
                let status = row["status"].as_str().unwrap_or("?");
                match row["progress_percent"].as_i64() {
                    Some(p) if status == "processing" => {
                        eprintln!(
                            "enqueue: job {} is {status} ({p}%)",
                            row["id"].as_str().unwrap_or("?")
                        )
                    }
                    _ => eprintln!(
                        "enqueue: job {} is {status}",
                        row["id"].as_str().unwrap_or("?")
                    ),
                }
            };
            let (id, waited) =
                commands::enqueue_following(&database, &url, user, &choice, waiting, follow)
                    .await
                    .map_err(|e| match e.sqlstate() {
                        // The insert's own link check, or the per-user limit.
                        Some("22023" | "P0001") => CliError::new(Kind::Usage, "enqueue", e.cause()),
                        _ => CliError::db("enqueue", &e),
                    })?;
            match waited {
                None => println!("{id}"),
                Some(w) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&w.row).unwrap_or_default()
                    );
                    let status = w.row["status"].as_str().unwrap_or("?");
                    if !w.finished {
                        return Err(CliError::new(
                            Kind::TimedOut,
                            "enqueue",
                            format!("job {id} is still {status} after {timeout} s"),
                        )
                        .fix(format!(
                            "is a daemon running? (xtract doctor; xtract jobs show {id})"
                        )));
                    }
                    if !w.succeeded {
                        let reason = w.row["error_message"].as_str().unwrap_or("no reason given");
                        return Err(CliError::new(
                            Kind::Failed,
                            "enqueue",
                            format!("job {id} is {status}: {reason}"),
                        )
                        .fix(format!("xtract jobs show {id} has the details")));
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
