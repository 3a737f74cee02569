//! Logging for every subcommand: `RUST_LOG`-style filters, human or JSON lines on stderr.

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines
    Human,
    /// One JSON object per line
    Json,
}

#[derive(Debug, Args)]
pub struct LoggingArgs {
    /// Log filter in RUST_LOG syntax (e.g. `info,skiff_store=debug`); overrides $RUST_LOG
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,

    /// Log output format
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

pub fn init(args: &LoggingArgs) -> anyhow::Result<()> {
    let filter = match &args.log {
        Some(f) => {
            EnvFilter::try_new(f).map_err(|e| anyhow::anyhow!("invalid --log filter {f:?}: {e}"))?
        }
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
