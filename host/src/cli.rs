//! Command-line interface: the subcommands and their arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Exit statuses, one per kind of failure (README, "Exit statuses").
pub mod exit {
    /// A failure while running: a provider, Discord, a file, the network.
    pub const FAILURE: u8 = 1;
    /// The command line is wrong (unknown flag, bad value): clap's own status.
    pub const USAGE: u8 = 2;
    /// The configuration is wrong or incomplete (an invalid key, a missing secret variable,
    /// a plugin that does not load): fix the config or the environment, not the code.
    pub const CONFIG: u8 = 3;
    /// A bug: the process panicked.
    pub const PANIC: u8 = 101;
}

/// A command line that cannot be carried out, found after clap parsed it (an `--output` that
/// is also an `--input`): exits with [`exit::USAGE`] like clap's own errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The latest `--at` accepted: a day.
pub(crate) const MAX_AT_MS: u64 = 86_400_000;

/// Parses `2.5s`, `800ms` or a bare number of seconds, from 0 to a day ([`MAX_AT_MS`]).
pub(crate) fn parse_time_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (s, 1000.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| "expected a time like 2.5s or 800ms".to_string())?;
    let ms = v * scale;
    if !(v.is_finite() && (0.0..=MAX_AT_MS as f64).contains(&ms)) {
        return Err("must be between 0s and 86400s (a day)".into());
    }
    Ok(ms.round() as u64)
}

const EXIT_HELP: &str = "Exit status: 0 success, 1 failure while running, 2 command-line usage \
error, 3 configuration problem (invalid key, missing secret variable, plugin that does not \
load), 101 internal error (a bug: please report it).";

/// OpenClaw Voice: an AI assistant in Discord voice channels.
#[derive(Debug, Parser)]
#[command(name = "openclaw-voice", version, about, long_about = None, after_help = EXIT_HELP)]
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
    /// Load every configuration layer and the plugins it uses, check every provider's
    /// settings, print the verdict first, and exit non-zero on any problem.
    CheckConfig {
        /// Also build every provider and ask it for its health (a real request for cloud
        /// providers, a model load for local ones); an unhealthy provider is a problem.
        #[arg(long)]
        probe: bool,
        /// Also print the effective configuration (every layer merged; no secret values).
        #[arg(long)]
        print: bool,
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
    /// Print a shell completion script (`openclaw-voice completions bash > \
    /// /etc/bash_completion.d/openclaw-voice`).
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The Wyoming protocol (Home Assistant's local speech services).
    Wyoming {
        /// What to do.
        #[command(subcommand)]
        command: WyomingCommand,
    },
    /// Discord tools for operators.
    #[command(hide = true)]
    Discord {
        /// What to do.
        #[command(subcommand)]
        command: DiscordCommand,
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

/// `discord …`.
#[derive(Debug, Subcommand)]
pub enum DiscordCommand {
    /// As a second ("speaker") bot: join a voice channel, play a WAV there, and wait for the
    /// reply of the bot under test (`scripts/discord-smoke`).
    Speak(SpeakArgs),
}

/// What `discord speak` is told.
#[derive(Debug, Clone, Args)]
pub struct SpeakArgs {
    /// The server.
    #[arg(long)]
    pub guild: u64,
    /// The voice channel to join and speak in.
    #[arg(long)]
    pub channel: u64,
    /// The WAV file to play (16-bit PCM, mono or stereo, any rate).
    #[arg(long)]
    pub wav: PathBuf,
    /// The user whose reply to wait for (the bot under test); unset: anyone else.
    #[arg(long)]
    pub listen_to: Option<u64>,
    /// How long to wait for the reply after the WAV has played, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// The variable holding the speaker bot's token.
    #[arg(long, default_value = "DISCORD_SPEAKER_TOKEN")]
    pub token_env: String,
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
    /// List the plugins in the plugin directories: name, version, roles, API version, path,
    /// hash. Exits non-zero when a library there could not be loaded.
    List {
        /// Directory to scan instead of `plugins.dir` and `plugins.dirs` from config.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a plugin crate that builds and passes its tests as generated: a minimal
    /// provider, a settings struct, tests with the SDK's test kit, a README.
    New {
        /// The plugin's name: lower-case letters, digits and hyphens (`my-whisper`).
        name: String,
        /// A speech-to-text plugin.
        #[arg(long, required_unless_present = "tts", conflicts_with = "tts")]
        stt: bool,
        /// A text-to-speech plugin.
        #[arg(long)]
        tts: bool,
        /// The crate's directory (default: ./NAME); must not exist or be empty.
        #[arg(long)]
        path: Option<PathBuf>,
        /// Depend on the plugin API in this directory (a checkout's `plugin-api`) by path.
        /// Default: the checkout this binary was built from when it exists, else the released
        /// API from the project's repository.
        #[arg(long)]
        api_path: Option<PathBuf>,
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
    #[arg(long = "at", value_parser = parse_time_ms)]
    pub at: Vec<u64>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time_ms("2.5s"), Ok(2500));
        assert_eq!(parse_time_ms("800ms"), Ok(800));
        assert_eq!(parse_time_ms("3"), Ok(3000));
        assert_eq!(parse_time_ms("86400s"), Ok(86_400_000));
        for bad in ["-1s", "soon", "1e300s", "1e15ms", "inf", "NaN"] {
            assert!(parse_time_ms(bad).is_err(), "{bad}");
        }
    }
}
