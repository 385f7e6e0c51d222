//! Command-line interface: the subcommands and their arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// OpenClaw Voice: an AI assistant in Discord voice channels.
#[derive(Debug, Parser)]
#[command(name = "openclaw-voice", version, about, long_about = None)]
pub struct Cli {
    /// Configuration environment: development, staging, production, offline.
    #[arg(
        long,
        global = true,
        env = "OPENCLAW_ENV",
        default_value = "development"
    )]
    pub env: String,

    /// Directory holding default.toml and <env>.toml.
    #[arg(
        long,
        global = true,
        env = "OPENCLAW_CONFIG_DIR",
        default_value = "config"
    )]
    pub config_dir: PathBuf,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bot: connect to Discord and serve voice channels. With `discord.enabled =
    /// false` it runs headless: the ops endpoints only, until SIGTERM/SIGINT.
    Run,
    /// Feed WAV files through the pipeline as speakers and write the bot's replies to a WAV.
    Simulate(SimulateArgs),
    /// Load every configuration layer and plugin, print the effective configuration with
    /// secrets redacted, and exit non-zero on any problem.
    CheckConfig {
        /// Also build every provider and ask it for its health (a real request for cloud
        /// providers, a model load for local ones); an unhealthy provider is a problem.
        #[arg(long)]
        probe: bool,
    },
    /// Inspect plugins.
    Plugins {
        /// What to do with plugins.
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Register the slash commands with Discord.
    RegisterCommands {
        /// Register in one guild (instant) instead of globally.
        #[arg(long)]
        guild: Option<u64>,
    },
    /// Print the OAuth2 URL that invites the bot to a server.
    InviteUrl,
    /// The Wyoming protocol (Home Assistant's local speech services).
    Wyoming {
        /// What to do.
        #[command(subcommand)]
        command: WyomingCommand,
    },
    /// Serve one plugin in a worker process (started by the host itself for providers with
    /// `isolation = "process"`; speaks a framed protocol on stdin/stdout).
    #[command(hide = true)]
    PluginWorker {
        /// Address-space limit for this process, in MiB.
        #[arg(long)]
        memory_limit_mb: Option<u64>,
        /// Inspect this library, print what it says of itself as JSON, and exit.
        #[arg(long)]
        probe: Option<PathBuf>,
    },
}

/// `wyoming …`.
#[derive(Debug, Subcommand)]
pub enum WyomingCommand {
    /// Offer the configured STT and TTS providers, with their failover chains, as a Wyoming
    /// server until SIGTERM/SIGINT.
    Serve {
        /// Address to listen on (`0.0.0.0:10300` for Home Assistant on another machine).
        #[arg(long, default_value = "127.0.0.1:10300")]
        bind: String,
    },
}

/// `plugins …`.
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the plugins in the plugin directory: name, version, roles, API version, path, hash.
    List {
        /// Directory to scan instead of `plugins.dir` from config.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `simulate …`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A WAV file a speaker says; repeat for more speakers. Each takes the `--speaker` and
    /// `--at` that follow it.
    #[arg(long = "input", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Speaker name for the matching `--input` (default: speaker1, speaker2…).
    #[arg(long = "speaker")]
    pub speakers: Vec<String>,
    /// Start time of the matching `--input`, like `2.5s` or `800ms` (default: 0s).
    #[arg(long = "at")]
    pub at: Vec<String>,
    /// Where to write everything the bot said.
    #[arg(long, default_value = "reply.wav")]
    pub output: PathBuf,
    /// Feed audio as fast as possible instead of in real time.
    #[arg(long)]
    pub fast: bool,
    /// Print turns as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// After the turns, keep serving the ops endpoints until SIGTERM/SIGINT (needs
    /// `ops.enabled`), so that `/metrics` and `/health` can be read.
    #[arg(long)]
    pub serve: bool,
}
