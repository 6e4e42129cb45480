//! callbridge: carrier-grade click-to-call. The composition root: configuration, the data-plane
//! workers, then the tokio control plane (SIP, HTTP, lab endpoints).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

mod config;
mod ctl;
mod dpstats;
mod drain;
mod lab;
mod logging;
mod manpage;
mod media_node;
mod metrics;
mod preflight;
mod reload;
mod serve;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Threads of tokio's blocking pool, where every store read and write runs (tokio's default
/// is 512). Writes wait for one writer and are group-committed, so more threads only add
/// stacks, page faults and context switches: under a burst of calls the default pool grew to
/// ~510 threads, each blocked on the same commit. Beyond this, blocking tasks queue (FIFO).
pub(crate) const MAX_BLOCKING_THREADS: usize = 64;

/// callbridge: a visitor clicks, callbridge calls them back, plays a message, calls an agent and
/// bridges the two calls through its own RTP relay.
#[derive(Debug, Parser)]
#[command(name = "callbridge", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane and the data plane (built-in defaults without --config).
    Serve {
        /// A TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run only a media node: the data plane, driven over rtpengine's ng protocol on
    /// `media.ng_listen` (UDP and TCP), e.g. by Kamailio's rtpengine module.
    Media {
        /// The TOML configuration file (`[media]`, and `[dpdk]` for that backend).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Check a configuration file; prints `FILE:LINE: KEY: reason` for the first problem.
    CheckConfig {
        /// The TOML configuration file.
        file: PathBuf,
    },
    /// Check this host for the configured data plane: isolated cores, hugepages, NIC driver,
    /// IOMMU/vfio, NUMA placement. Exits non-zero when something must be fixed.
    Preflight {
        /// The TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Operate a running server over its HTTP API: status, calls, agents, drain, reload.
    Ctl(ctl::Ctl),
    /// Print the man page callbridge(1) (roff, from this command line's definition) on stdout;
    /// `scripts/package` runs it to build /usr/share/man/man1/callbridge.1.gz.
    #[command(hide = true)]
    Man,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Ctl(c) => ctl::run(c),
        Command::Man => match manpage::render(Cli::command(), &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("callbridge man: {e}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig { file } => match config::Config::load_checked(&file) {
            Ok((_, warnings)) => {
                for w in &warnings {
                    eprintln!("warning: {w}");
                }
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Preflight { config } => match config::Config::load_checked(&config) {
            Ok((cfg, _)) => {
                let report = preflight::run(&cfg, &config);
                println!("{report}");
                if report.ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Media { config } => {
            let cfg = match config::Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = cfg.check_build() {
                eprintln!("callbridge: {e}");
                return ExitCode::from(2);
            }
            if let Err(e) = serve::init_tracing(&cfg.log) {
                eprintln!("callbridge: {e}");
                return ExitCode::from(2);
            }
            serve::raise_fd_limit();
            match media_node::run(&cfg, &config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("callbridge: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve { config } => {
            let cfg = match &config {
                Some(path) => match config::Config::load(path) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::from(2);
                    }
                },
                None => config::Config::default(),
            };
            if cfg.business.is_empty() {
                eprintln!(
                    "callbridge: business: `serve` needs at least one [[business]]; a file with media.ng_listen \
                     and no businesses configures a media node: run `callbridge media --config FILE`"
                );
                return ExitCode::from(2);
            }
            if let Err(e) = cfg.check_build() {
                eprintln!("callbridge: {e}");
                return ExitCode::from(2);
            }
            if let Err(e) = serve::init_tracing(&cfg.log) {
                eprintln!("callbridge: {e}");
                return ExitCode::from(2);
            }
            serve::raise_fd_limit();
            match serve::serve(cfg, config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("callbridge: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
