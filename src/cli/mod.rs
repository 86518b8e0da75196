//! The `sluice` command: `serve` runs the server, `demo` shows the whole
//! story against a private, throttled MariaDB, `config-reference` prints the
//! settings table. Parsing and printing only; the work happens in the library.

pub mod admin;
pub mod demo;
pub mod format;
pub mod queue;

use crate::config::{Config, RawConfig};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "sluice", version, about = "A durable write buffer for MariaDB")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parse the command line, with each `serve` setting's help showing
    /// its default (kept out of clap's own defaults, so that a flag still
    /// wins over the environment and the file only when given).
    pub fn parse_with_defaults() -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let cmd = Cli::command().mut_subcommand("serve", |mut serve| {
            for k in crate::config::KEYS {
                let help = match (k.default.is_empty(), k.name) {
                    (true, "db_url") => k.doc.to_string(),
                    (true, _) => format!("{} [default: empty]", k.doc),
                    (false, _) => format!("{} [default: {}]", k.doc, k.default),
                };
                serve = serve.mut_arg(k.name, |a| a.help(help));
            }
            serve
        });
        let matches = cmd.get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run sluice: the HTTP front, the queue, the drainer.
    Serve(Box<ServeArgs>),
    /// Start a private MariaDB and sluice, drive writes, stall and freeze
    /// MariaDB, and verify that every acknowledged write landed exactly once.
    Demo(demo::DemoArgs),
    /// Show a running sluice's mode, primary health, queue and drain.
    Status(admin::AdminArgs),
    /// Look at the queued writes (from a running sluice, or a stopped one's
    /// data directory).
    Queue {
        #[command(subcommand)]
        command: queue::QueueCommand,
        #[command(flatten)]
        admin: admin::AdminArgs,
    },
    /// Look at the dead letters (writes MariaDB refused during a drain).
    Dead {
        #[command(subcommand)]
        command: DeadCommand,
        #[command(flatten)]
        admin: admin::AdminArgs,
    },
    /// Pause or resume the drain (writes keep being queued while paused).
    Drain {
        #[command(subcommand)]
        command: DrainCommand,
        #[command(flatten)]
        admin: admin::AdminArgs,
    },
    /// Fail over to the replica now: fence the primary, let the replica
    /// catch up, promote it, retarget (a planned switchover when the primary
    /// is reachable). Follows the procedure to its end.
    Failover {
        /// The target: the configured replica (the only one).
        #[arg(long, default_value = "replica", value_parser = ["replica"])]
        to: String,
        /// How long to follow the procedure.
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
        #[command(flatten)]
        admin: admin::AdminArgs,
    },
    /// Return writes to the configured primary (after it was made a replica
    /// of the current one by hand): the operator's word that lifts its fence.
    Failback {
        /// How long to follow the procedure.
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
        #[command(flatten)]
        admin: admin::AdminArgs,
    },
    /// Mark a fenced server's errant transactions resolved, once you have
    /// decided which copy stands (normally the current primary's, after
    /// rebuilding the fenced server from it). Failback to that server is
    /// refused until then; `sluice status` lists them.
    ResolveErrant {
        /// The fenced server, as `sluice status` names it (host:port).
        server: String,
        #[command(flatten)]
        admin: admin::AdminArgs,
    },
    /// Print the configuration reference (Markdown).
    ConfigReference,
    /// Read a password on standard input and print its MariaDB-style hash,
    /// for `mysql_users`.
    HashPassword,
}

#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// List dead letters, oldest first.
    List(admin::PageArgs),
    /// Show one dead letter (by sequence number or write id) with its error.
    Show {
        /// The dead letter: its sequence number (SEQ in `dead list`) or its
        /// write id (26 characters).
        reference: String,
    },
    /// Apply a dead letter again (now if sluice is direct, else at the back
    /// of the queue); it leaves the list only once applied or queued.
    Retry {
        /// The dead letter: its sequence number (SEQ in `dead list`) or its
        /// write id (26 characters).
        reference: String,
    },
    /// Drop a dead letter for good.
    Drop {
        /// The dead letter: its sequence number (SEQ in `dead list`) or its
        /// write id (26 characters).
        reference: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DrainCommand {
    /// Stop applying queued writes (new writes keep being queued behind
    /// them); `drain resume` starts again.
    Pause,
    /// Apply queued writes again after `drain pause`.
    Resume,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file; flags and SLUICE_* variables override it.
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: RawConfig,
}

/// Load and validate the configuration of `serve`.
pub fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let file = match &args.config {
        Some(p) => RawConfig::from_file(p)?,
        None => RawConfig::default(),
    };
    let raw = args.settings.clone().over(file);
    Ok(Config::from_raw(&raw)?)
}

pub fn init_tracing(filter: &str) {
    init_logging(filter, crate::config::LogFormat::Text);
}

/// Log to stderr through `filter`, as text (colours only on a terminal, so
/// a log file holds no escape codes) or as one JSON object per line.
pub fn init_logging(filter: &str, format: crate::config::LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        crate::config::LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        crate::config::LogFormat::Json => builder.json().try_init(),
    };
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = load_config(&args).context("refusing to start")?;
            init_logging(&config.log, config.log_format);
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(crate::server::run(config, shutdown_signal()))?;
            Ok(())
        }
        Command::Demo(args) => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(demo::run(args))
        }
        Command::HashPassword => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                anyhow::bail!(
                    "no password on standard input: try `echo -n secret | sluice hash-password`"
                );
            }
            println!("{}", crate::fronts::mysql::auth::native_hash(password));
            Ok(())
        }
        Command::Status(a) => block_on(admin::status(&a)),
        Command::Queue { command, admin: a } => block_on(queue::run(command, a)),
        Command::Dead { command, admin: a } => block_on(admin::dead(command, &a)),
        Command::Drain { command, admin: a } => {
            block_on(admin::drain(&a, matches!(command, DrainCommand::Pause)))
        }
        Command::Failover { wait, admin: a, .. } => block_on(admin::failover(&a, false, wait)),
        Command::Failback { wait, admin: a } => block_on(admin::failover(&a, true, wait)),
        Command::ResolveErrant { server, admin: a } => block_on(admin::resolve_errant(&a, &server)),
        Command::ConfigReference => {
            print!("{}", crate::config::reference_markdown());
            Ok(())
        }
    }
}

fn block_on(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
