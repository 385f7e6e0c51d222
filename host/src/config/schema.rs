//! The configuration schema: one struct per section, every field documented with its default.
//!
//! Every struct is `#[serde(default, deny_unknown_fields)]`, so a single layer (one file, or the
//! environment) can be checked on its own: unknown keys and wrong types are caught per layer
//! and reported with the file and the dotted key path. No field holds a secret: secrets live in
//! environment variables named by `*_env` keys.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::shards::ShardSpec;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where plugin libraries are found.
    pub plugins: PluginsConfig,
    /// Speech-to-text: which providers, in failover order.
    pub stt: RoleConfig,
    /// Text-to-speech: which providers, in failover order, and the voice per language.
    pub tts: TtsConfig,
    /// Provider blocks, by provider id (`[providers.local-whisper]`).
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The conversational agent.
    pub agent: AgentConfig,
    /// Endpointing, barge-in and turn handling.
    pub pipeline: PipelineConfig,
    /// The operations HTTP server.
    pub ops: OpsConfig,
    /// Log output.
    pub logging: LoggingConfig,
    /// The Discord transport.
    pub discord: DiscordConfig,
    /// Error reporting to Sentry (enabled by the `SENTRY_DSN` environment variable).
    pub sentry: SentryConfig,
    /// Where per-guild settings are kept.
    pub storage: StorageConfig,
}

/// `[plugins]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// Directory holding plugin libraries (`*.so`). A relative path in a file is relative to
    /// that file's directory; one from `OPENCLAW__PLUGINS__DIR`, to the working directory.
    /// Default: `target/release` (relative to the working directory).
    pub dir: String,
    /// More directories, searched after `dir` in this order (relative paths as for `dir`);
    /// a plugin is taken from the first directory holding its library. Default: none.
    pub dirs: Vec<String>,
}

impl PluginsConfig {
    /// Every plugin directory, in search order: `dir`, then `dirs`.
    pub(crate) fn search_path(&self) -> Vec<std::path::PathBuf> {
        std::iter::once(&self.dir)
            .chain(&self.dirs)
            .map(std::path::PathBuf::from)
            .collect()
    }
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: "target/release".into(),
            dirs: Vec::new(),
        }
    }
}

/// `[stt]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RoleConfig {
    /// Provider ids in failover order; each names a `[providers.<id>]` block. Default: empty.
    pub providers: Vec<String>,
}

/// `[tts]`: the providers, and a voice per language.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TtsConfig {
    /// Provider ids in failover order; each names a `[providers.<id>]` block. Default: empty.
    pub providers: Vec<String>,
    /// `[tts.voices]`: the voice asked of the first provider (its own voice ids) when a reply's
    /// language (detected by speech-to-text, else `pipeline.language`) is this code
    /// (`fr = "fr-fr"`). `pipeline.tts_voice` (or a guild's voice), when set, keeps the
    /// configured language's voice; a language without an entry gets it too. Every provider
    /// is told the reply's language. Default: none.
    pub voices: TtsVoices,
}

/// `[tts.voices]`: a voice id by language code.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(transparent)]
pub struct TtsVoices(pub BTreeMap<LanguageCode, VoiceId>);

impl TtsVoices {
    /// The voice configured for `language` (`pt-BR`, `fr`): its own entry, else its primary
    /// subtag's (`pt`).
    pub(crate) fn voice_for(&self, language: &str) -> Option<&VoiceId> {
        let code = LanguageCode::try_from(language.to_string()).ok()?;
        self.0.get(&code).or_else(|| self.0.get(&code.primary()))
    }
}

/// A language code as `[tts.voices]` keys spell it: ISO 639 letters, optionally a region or
/// script after `-` or `_` (`en`, `pt-br`, `zh_Hant`); kept lower-case with `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct LanguageCode(String);

impl LanguageCode {
    /// The code as written canonically (`pt-br`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The primary language subtag (`pt` of `pt-br`).
    pub(crate) fn primary(&self) -> LanguageCode {
        LanguageCode(self.0.split('-').next().unwrap_or_default().to_string())
    }
}

impl TryFrom<String> for LanguageCode {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let code = value.trim().to_ascii_lowercase().replace('_', "-");
        let mut parts = code.split('-');
        let primary_ok = parts.next().is_some_and(|p| {
            (2..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_lowercase())
        });
        let rest_ok = parts
            .all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
        if primary_ok && rest_ok {
            Ok(LanguageCode(code))
        } else {
            Err(format!(
                "`{value}` is not a language code; use one such as `en`, `fr` or `pt-br`"
            ))
        }
    }
}

impl From<LanguageCode> for String {
    fn from(code: LanguageCode) -> String {
        code.0
    }
}

/// A voice id for a `[tts.voices]` entry: not empty, at most 200 characters, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct VoiceId(String);

impl VoiceId {
    /// The voice id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for VoiceId {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let voice = value.trim();
        if voice.is_empty() || voice.len() > 200 || voice.chars().any(char::is_control) {
            return Err(
                "must be a voice id of the first text-to-speech provider (not empty, at most \
                 200 characters)"
                    .to_string(),
            );
        }
        Ok(VoiceId(voice.to_string()))
    }
}

impl From<VoiceId> for String {
    fn from(voice: VoiceId) -> String {
        voice.0
    }
}

/// `[providers.<id>]`: one configured provider.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    /// The plugin that implements it (its `PluginInfo.name`). Default: the provider id.
    pub plugin: Option<String>,
    /// Per-call timeout in milliseconds. Default: 15000.
    pub timeout_ms: u64,
    /// Calls allowed in flight at once; more wait. Default: 4.
    pub max_concurrent_calls: usize,
    /// Time allowed to load the plugin and build the provider (a model load), in
    /// milliseconds; past it the provider is reported as not started (and its worker
    /// killed). Default: 120000.
    pub setup_timeout_ms: u64,
    /// Expected SHA-256 of the plugin file (hex), checked on the file's bytes before it is
    /// opened as a library; a differing file is refused. Default: none.
    pub sha256: Option<String>,
    /// Where the plugin runs: `process` (a worker process of its own: a crash or a hang in it
    /// is a provider error, and the worker is restarted) or `in-process` (loaded into the
    /// host: lowest overhead, but a crash in native code ends the host). Default: `process`.
    pub isolation: Isolation,
    /// With `isolation = "process"`: the worker's address-space limit in MiB (`RLIMIT_AS`); a
    /// plugin that allocates past it dies alone. Default: none.
    pub memory_limit_mb: Option<u64>,
    /// Plugin-specific settings, handed to the plugin as TOML text. Default: empty.
    pub settings: toml::Table,
    /// When the provider's circuit breaker takes it out of the failover rotation.
    pub circuit: CircuitConfig,
}

/// `providers.<id>.isolation`: where a provider's plugin runs.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// In a worker process of its own (`openclaw-voice plugin-worker`).
    #[default]
    Process,
    /// Loaded into the host process.
    InProcess,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            plugin: None,
            timeout_ms: 15_000,
            max_concurrent_calls: 4,
            setup_timeout_ms: 120_000,
            sha256: None,
            isolation: Isolation::Process,
            memory_limit_mb: None,
            settings: toml::Table::new(),
            circuit: CircuitConfig::default(),
        }
    }
}

/// `[providers.<id>.circuit]`: the provider's circuit breaker. An open circuit is skipped by
/// the failover loops (it is tried only when every other provider failed) until the cooldown
/// is over; then one call probes it, and a success closes it. Auth and config errors open it
/// at once.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitConfig {
    /// Failures in a row that open the circuit. Default: 3.
    pub failures: u32,
    /// Share of failed calls among the last `window` that opens it, 0 to 1; 0 turns this rule
    /// off. Default: 0.5.
    pub failure_rate: f64,
    /// Calls the failure rate is measured over; the rule applies once this many were made.
    /// Default: 20.
    pub window: u32,
    /// How long an open circuit is skipped before a probe call, in ms. Default: 30000.
    pub cooldown_ms: u64,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        CircuitConfig {
            failures: 3,
            failure_rate: 0.5,
            window: 20,
            cooldown_ms: 30_000,
        }
    }
}

/// Which agent answers.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AgentKind {
    /// Repeats what was heard: no network, no account. The offline default.
    #[default]
    Echo,
    /// Any OpenAI-compatible `/v1/chat/completions` server (OpenClaw gateway, OpenAI, Ollama).
    OpenaiChat,
}

/// `[agent]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// `echo` or `openai-chat`. Default: `echo`.
    pub kind: AgentKind,
    /// Base URL of the chat server (without `/v1`). Default: `http://127.0.0.1:18789`.
    pub base_url: String,
    /// Model name; `openclaw:<agentId>` for the OpenClaw gateway. Default: `openclaw:main`.
    pub model: String,
    /// Environment variable holding the bearer token; none for servers without auth.
    pub api_key_env: Option<String>,
    /// The system prompt.
    pub system_prompt: String,
    /// Past exchanges kept per channel as conversation memory. Default: 8.
    pub memory_turns: usize,
    /// Whole-request timeout in milliseconds. Default: 30000.
    pub timeout_ms: u64,
    /// Time allowed until the first token, in milliseconds. Default: 10000.
    pub first_token_timeout_ms: u64,
    /// Maximum tokens in a reply. Default: 300.
    pub max_tokens: u32,
    /// Sampling temperature. Default: 0.7.
    pub temperature: f64,
    /// Send a per-speaker `user` field (hashed user id) so the gateway keeps a session.
    /// Default: true.
    pub send_user: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            kind: AgentKind::Echo,
            base_url: "http://127.0.0.1:18789".into(),
            model: "openclaw:main".into(),
            api_key_env: None,
            system_prompt: "You are a helpful voice assistant in a Discord voice channel. \
                Answer in one to three short spoken sentences, without markdown, lists or emoji."
                .into(),
            memory_turns: 8,
            timeout_ms: 30_000,
            first_token_timeout_ms: 10_000,
            max_tokens: 300,
            temperature: 0.7,
            send_user: true,
        }
    }
}

/// How speech is told from silence (`pipeline.vad`).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum VadKind {
    /// Silero VAD, a small neural network (`silero_vad.onnx`), per speaker. The default.
    #[default]
    Silero,
    /// The loudness gate: frames louder than `speech_threshold_dbfs` are speech. What runs
    /// when Silero or ONNX Runtime is not installed.
    Energy,
}

/// What decides that a speaker's turn is over (`pipeline.turn_model`).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TurnModelKind {
    /// Smart Turn v3.2 (`smart-turn-v3.2-cpu.onnx`) asks, at each pause, whether the words so
    /// far are a finished turn. The default.
    #[default]
    SmartTurn,
    /// A fixed silence (`silence_hangover_ms`) ends the turn. What runs when the model is
    /// not installed.
    None,
}

/// `[pipeline]`: endpointing and turn handling.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// `silero` or `energy`. When the Silero model or ONNX Runtime is not installed (and no
    /// path is set), the energy gate runs instead, with one warning. Default: `silero`.
    pub vad: VadKind,
    /// Silero speech probability at or above which a window is speech (0 to 1); speech goes
    /// on until it falls below this minus 0.15. Default: 0.5.
    pub vad_threshold: f32,
    /// With Silero, frames quieter than this (dBFS, RMS) are silence without running the
    /// network, so silent speakers cost next to nothing. Default: -60.
    pub vad_energy_gate_dbfs: f32,
    /// `smart-turn` or `none`. Without the model (and no path set) `none` runs, with one
    /// warning. Default: `smart-turn`.
    pub turn_model: TurnModelKind,
    /// Smart Turn probability above which the turn is complete (0 to 1). Default: 0.5.
    pub turn_threshold: f32,
    /// Silence after speech at which Smart Turn (and speculative speech-to-text) start, in
    /// ms. With `turn_model = "smart-turn"`, 200 halves the CPU (fewer speculations thrown
    /// away; docs/BENCHMARKS.md, "Turn taking"). Default: 100.
    pub turn_pause_ms: u32,
    /// Silence that ends a turn Smart Turn found complete, in ms. Default: 250.
    pub turn_complete_silence_ms: u32,
    /// Silence that ends a turn Smart Turn found incomplete (the speaker may go on), in ms.
    /// Default: 2000.
    pub turn_incomplete_silence_ms: u32,
    /// The middle silence, in ms, from `turn_complete_silence_ms` to
    /// `turn_incomplete_silence_ms`: where the cues disagree it ends the turn. With
    /// `turn_text_check`, a speculative transcript that ends a sentence (`.`, `?`, `!` after a
    /// word a sentence can end on) while Smart Turn found the turn incomplete; and a transcript
    /// whose last word is unsure (`turn_last_word_min_probability`) while Smart Turn found it
    /// complete. Default: 1000.
    pub turn_text_complete_silence_ms: u32,
    /// Start speech-to-text at each pause, while the turn is being decided; a speculation is
    /// dropped when the speaker goes on. Default: true.
    pub speculative_stt: bool,
    /// With speculative speech-to-text and an English `language`, the transcript at a pause
    /// is a cue of the turn-end decision: when it stops on a word no sentence ends on ("… are
    /// there in") or trails off ("…", a comma), the turn waits for the long silence whatever
    /// Smart Turn says; when it ends a sentence against Smart Turn's "incomplete", the turn
    /// ends after `turn_text_complete_silence_ms`. Default: true.
    pub turn_text_check: bool,
    /// With speculative speech-to-text and a provider that reports word probabilities
    /// (local-whisper does): a transcript at a pause whose last word's probability is below
    /// this (0 to 1) holds a turn Smart Turn found complete for the middle silence
    /// (`turn_text_complete_silence_ms`) instead of the short one. Whisper "finishes" a
    /// sentence cut short by a pause with a word it invents ("Could you tell me the" heard as
    /// "Could you tell me, Mur?") and is unsure of that word; 0 turns the cue off. Default:
    /// 0.4 (docs/BENCHMARKS.md, "Turn taking").
    pub turn_last_word_min_probability: f32,
    /// When a speaker goes on this soon (ms) after the end of their speech, although the turn
    /// had ended, the new speech continues that turn: its reply is stopped (unless it was
    /// already heard in full) and the whole is answered as one question. A pause the
    /// turn-end rule misjudged then costs a reply begun and stopped instead of two answers.
    /// 0 turns it off; `simulate --fast` has no real time to go on in and never continues.
    /// Default: 1200.
    pub turn_resume_ms: u32,
    /// The Silero VAD model file. Default: none, meaning `silero_vad.onnx` in the models
    /// directory (`$OPENCLAW_MODELS_DIR`, else `~/.cache/openclaw-voice/models`, where
    /// `make model` puts it). A path set here must exist.
    pub silero_model: Option<String>,
    /// The Smart Turn model file. Default: none, meaning `smart-turn-v3.2-cpu.onnx` in the
    /// models directory. A path set here must exist.
    pub smart_turn_model: Option<String>,
    /// The ONNX Runtime library (`libonnxruntime.so`, 1.24 or later). Default: none, meaning
    /// `$OPENCLAW_ONNXRUNTIME`, `$ORT_DYLIB_PATH`, then the models directory.
    pub onnxruntime: Option<String>,
    /// With `vad = "energy"`: frames louder than this (dBFS, RMS) count as speech.
    /// Default: -45.
    pub speech_threshold_dbfs: f32,
    /// Silence after speech that ends an utterance when `turn_model = "none"`, in ms.
    /// Default: 500.
    pub silence_hangover_ms: u32,
    /// Shorter utterances are dropped as noise, in ms. Default: 250.
    pub min_utterance_ms: u32,
    /// Longer utterances are cut and handled, in ms. Default: 15000.
    pub max_utterance_ms: u32,
    /// Audio kept from before speech started, so first syllables are not cut, in ms.
    /// Default: 200.
    pub preroll_ms: u32,
    /// Speech (by the same VAD) from a user for this long while the bot talks stops the bot,
    /// in ms. Default: 400.
    pub barge_in_min_ms: u32,
    /// Whether barge-in is enabled. Default: true.
    pub barge_in: bool,
    /// The spoken language, a code (`en`, `fr`), told to speech-to-text; `auto` lets a
    /// multilingual model detect it per utterance. The detected language (else this one)
    /// reaches the agent and text-to-speech (`[tts.voices]`). Default: `en`.
    pub language: String,
    /// Time a turn may spend on speech-to-text, failovers included, in ms: each provider gets
    /// its own `timeout_ms` or what is left of this, whichever is less. Default: 30000.
    pub stt_budget_ms: u64,
    /// Time a sentence may wait for its first synthesized audio, failovers included, in ms.
    /// Default: 20000.
    pub tts_budget_ms: u64,
    /// The voice asked of the first text-to-speech provider (its own voice ids); none: the
    /// provider's configured voice. A guild can set its own (`/voice-settings set voice`).
    /// Default: none.
    pub tts_voice: Option<String>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            vad: VadKind::Silero,
            vad_threshold: 0.5,
            vad_energy_gate_dbfs: -60.0,
            turn_model: TurnModelKind::SmartTurn,
            turn_threshold: 0.5,
            turn_pause_ms: 100,
            turn_complete_silence_ms: 250,
            turn_incomplete_silence_ms: 2_000,
            turn_text_complete_silence_ms: 1_000,
            speculative_stt: true,
            turn_text_check: true,
            turn_last_word_min_probability: 0.4,
            turn_resume_ms: 1_200,
            silero_model: None,
            smart_turn_model: None,
            onnxruntime: None,
            speech_threshold_dbfs: -45.0,
            silence_hangover_ms: 500,
            min_utterance_ms: 250,
            max_utterance_ms: 15_000,
            preroll_ms: 200,
            barge_in_min_ms: 400,
            barge_in: true,
            language: "en".into(),
            stt_budget_ms: 30_000,
            tts_budget_ms: 20_000,
            tts_voice: None,
        }
    }
}

/// `[ops]`: the health and metrics HTTP server.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OpsConfig {
    /// Whether to serve `/health`, `/ready` and `/metrics`. Default: true.
    pub enabled: bool,
    /// Listen address. Default: `127.0.0.1:3001`.
    #[serde(with = "display_from_str")]
    pub bind: SocketAddr,
    /// Environment variable holding a bearer token for `/metrics` and detailed health;
    /// none means open. Default: none.
    pub token_env: Option<String>,
    /// How long in-flight turns may run after SIGTERM, in ms. Default: 10000.
    pub shutdown_deadline_ms: u64,
    /// How often each provider's health check runs (its plugin's `health()`, off the turn
    /// path; `/health` shows the answers), in ms; 0 turns the checks off. Default: 30000.
    pub health_check_interval_ms: u64,
    /// Connections served at once; more are closed as soon as they are accepted, so a flood
    /// of idle or half-sent connections cannot exhaust the process. Default: 256.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, in ms; slower connections are
    /// closed. Default: 5000.
    pub header_read_timeout_ms: u64,
}

impl Default for OpsConfig {
    fn default() -> Self {
        OpsConfig {
            enabled: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 3001)),
            token_env: None,
            shutdown_deadline_ms: 10_000,
            health_check_interval_ms: 30_000,
            max_connections: 256,
            header_read_timeout_ms: 5_000,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Human-readable lines. Default.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[logging]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// Level or filter (`info`, `openclaw_voice=debug`); `LOG_LEVEL` overrides. Default: `info`.
    pub level: String,
    /// `pretty` or `json`. Default: `pretty`.
    pub format: LogFormat,
    /// Log user ids hashed (`u-…`, see `telemetry::hash_user`) rather than raw. Default: true.
    pub hash_user_ids: bool,
    /// Environment variable holding the per-deployment key user ids are hashed with (HMAC-
    /// SHA-256), so a hash cannot be matched to a public Discord id without it. Unset: a
    /// built-in key (hashes still hide ids from a casual reader, not from someone who has
    /// the source). Default: none.
    pub hash_key_env: Option<String>,
    /// Ship every (scrubbed) log line to CloudWatch Logs too.
    pub cloudwatch: CloudWatchConfig,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
            format: LogFormat::Pretty,
            hash_user_ids: true,
            hash_key_env: None,
            cloudwatch: CloudWatchConfig::default(),
        }
    }
}

/// `[logging.cloudwatch]`: a log sink that sends every line, scrubbed like on stderr, to
/// CloudWatch Logs with `PutLogEvents` (`telemetry::cloudwatch`). Credentials and the endpoint
/// come from the standard AWS chain and variables (`AWS_ACCESS_KEY_ID`…, `AWS_PROFILE`, the
/// ECS/EC2 roles, `AWS_ENDPOINT_URL`), never from this file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CloudWatchConfig {
    /// Whether the sink is on. Default: false.
    pub enabled: bool,
    /// The log group (it must exist unless `create_log_group`). Required when enabled.
    pub log_group: String,
    /// The log stream's name: a template with `{host}` (the host name), `{shards}` (the
    /// Discord shard range, `all` when unset), `{env}` and `{pid}`. Default: `{host}/{shards}`.
    pub stream: String,
    /// The AWS region; unset, the standard chain (`AWS_REGION`, the profile) decides.
    pub region: Option<String>,
    /// How often lines are sent, in ms (a batch also goes as soon as it is full). Default: 5000.
    pub flush_interval_ms: u64,
    /// Lines held while waiting to be sent; more are dropped and counted in
    /// `log_events_dropped_total`, never waited for. Default: 10000.
    pub buffer_events: usize,
    /// Retries of a failed `PutLogEvents`, with exponential backoff. Default: 3.
    pub max_retries: u32,
    /// Create the log group when it does not exist (needs `logs:CreateLogGroup`). Default: false.
    pub create_log_group: bool,
}

impl Default for CloudWatchConfig {
    fn default() -> Self {
        CloudWatchConfig {
            enabled: false,
            log_group: String::new(),
            stream: "{host}/{shards}".into(),
            region: None,
            flush_interval_ms: 5_000,
            buffer_events: 10_000,
            max_retries: 3,
            create_log_group: false,
        }
    }
}

/// `[discord]`: the Discord transport.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DiscordConfig {
    /// Whether `run` connects to Discord; `false` runs headless (ops endpoints only).
    /// Default: true.
    pub enabled: bool,
    /// Environment variable holding the bot token. Default: `DISCORD_BOT_TOKEN`.
    pub token_env: String,
    /// The bot's application (client) id, from the Developer Portal. `invite-url` and
    /// `register-commands` use it; unset, they look it up with the token. Default: none.
    pub application_id: Option<u64>,
    /// The shards this process runs, `first-last/total` (`"0-3/16"`) or `id/total`
    /// (`"2/16"`); or `"auto/<total>"` (`"auto"`: one shard per process) in a shard cluster,
    /// where the process takes its slice from `SHARD_PROCESSES` and its ordinal
    /// (`POD_ORDINAL`, else the `-<n>` ending its hostname). Default: none, meaning every
    /// shard, as many as Discord recommends.
    #[serde(with = "display_from_str::option")]
    pub shards: Option<ShardSpec>,
    /// Roles allowed to use `/voice join` and `/voice leave`, by id or by name (names match
    /// case-insensitively). Empty means everyone. `/voice status` is open to all.
    /// Default: empty.
    pub allowed_roles: Vec<String>,
    /// How long the bot stays in a voice channel with no one but bots in it before leaving, in
    /// ms; 0 never leaves. Default: 60000.
    pub auto_leave_after_ms: u64,
    /// A text channel id where each turn's transcript and reply are posted. Default: none.
    pub transcript_channel: Option<u64>,
    /// How many times a dropped voice connection is rejoined (with backoff) before the
    /// session is given up and reported. Default: 3.
    pub voice_reconnect_attempts: u32,
    /// Base URL of Discord's HTTP API, `http(s)://host[:port]`; the gateway address is asked
    /// from it. For tests against a local fake Discord, or an HTTP proxy that handles rate
    /// limits (serenity's own rate limiter is off when this is set). Default: none
    /// (`https://discord.com`).
    pub api_base_url: Option<String>,
    /// The names the bot answers to in addressed mode ("Claw, …", "hey OpenClaw …"); matched
    /// loosely near the start of an utterance and stripped before the agent sees it. A guild
    /// can set its own. Default: `["claw", "openclaw"]`.
    pub wake_names: Vec<String>,
    /// When the bot answers: `auto` (everything while one person is in the channel, only
    /// addressed utterances from `addressed_min_humans` people on), `always`, `addressed`,
    /// or `push-to-talk` (people use Discord's own push-to-talk; everything heard is
    /// answered). A guild can set its own. Default: `auto`.
    pub reply_mode: ReplyMode,
    /// In `auto` mode, how many people (bots aside) in the channel make the bot answer only
    /// when addressed. Default: 2.
    pub addressed_min_humans: usize,
    /// Role ids (besides Manage Server) allowed to use `/voice settings`. Default: empty.
    pub settings_roles: Vec<u64>,
    /// Post a visible notice in the voice channel's text chat when the bot joins, saying it
    /// listens and transcribes. Default: true.
    pub join_notice: bool,
    /// Voice channel ids the bot joins by itself: at start (each server as it loads), when
    /// the gateway connects again, after a voice connection was lost for good, and when
    /// someone enters one while the bot is in no call in that server. One per server; a server's own `auto_join_channel` setting replaces
    /// it there. Default: empty.
    pub auto_join_channels: Vec<u64>,
    /// Bot user ids heard and answered like people (a test speaker bot, such as
    /// `scripts/discord-smoke`'s); every other bot is ignored. Default: empty.
    pub heard_bots: Vec<u64>,
}

/// When the bot answers what it hears (`discord.reply_mode`, or a guild's own).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum ReplyMode {
    /// `always` while one person is in the channel, `addressed` from
    /// `discord.addressed_min_humans` people on.
    #[default]
    Auto,
    /// Every utterance.
    Always,
    /// Only utterances that start with one of the wake names.
    Addressed,
    /// People talk with Discord's push-to-talk; every utterance heard is answered.
    PushToTalk,
}

impl ReplyMode {
    /// Every mode, with its name as written in settings.
    pub(crate) const ALL: [(ReplyMode, &'static str); 4] = [
        (ReplyMode::Auto, "auto"),
        (ReplyMode::Always, "always"),
        (ReplyMode::Addressed, "addressed"),
        (ReplyMode::PushToTalk, "push-to-talk"),
    ];

    /// The name as written in settings.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(m, _)| *m == self)
            .map(|(_, n)| *n)
            .unwrap_or("auto")
    }

    /// The mode named `text`.
    pub fn parse(text: &str) -> Option<ReplyMode> {
        let text = text.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL.iter().find(|(_, n)| *n == text).map(|(m, _)| *m)
    }
}

/// `[storage]`: per-guild settings. SQLite in a file by default (created, migrated and put in
/// WAL mode at start); PostgreSQL when `database_url_env` is set, for several processes.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The SQLite file (its directory is created). Default: `data/guild-settings.sqlite`.
    pub path: String,
    /// Environment variable holding a `postgres://` URL (it may hold a password); when set,
    /// PostgreSQL is used instead of the file. Default: none.
    pub database_url_env: Option<String>,
    /// How long a guild's settings are served from memory before being read again (changes
    /// made through this process invalidate them at once). Default: 30000.
    pub cache_ttl_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: "data/guild-settings.sqlite".into(),
            database_url_env: None,
            cache_ttl_ms: 30_000,
        }
    }
}

impl DiscordConfig {
    /// `shards` as configured (`0-3/16`, `auto/4`), for labels; `None` when unset.
    pub(crate) fn shard_label(&self) -> Option<String> {
        self.shards.map(|s| s.to_string())
    }
}

impl Default for DiscordConfig {
    fn default() -> Self {
        DiscordConfig {
            enabled: true,
            token_env: "DISCORD_BOT_TOKEN".into(),
            application_id: None,
            shards: None,
            allowed_roles: Vec::new(),
            auto_leave_after_ms: 60_000,
            transcript_channel: None,
            voice_reconnect_attempts: 3,
            api_base_url: None,
            wake_names: vec!["claw".into(), "openclaw".into()],
            reply_mode: ReplyMode::Auto,
            addressed_min_humans: 2,
            settings_roles: Vec::new(),
            join_notice: true,
            auto_join_channels: Vec::new(),
            heard_bots: Vec::new(),
        }
    }
}

/// `[sentry]`: error reporting. The DSN comes from `SENTRY_DSN`; unset means disabled.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SentryConfig {
    /// Share of traces sent, 0 to 1. Default: 1.0 (production sets 0.1).
    pub traces_sample_rate: f32,
}

impl Default for SentryConfig {
    fn default() -> Self {
        SentryConfig {
            traces_sample_rate: 1.0,
        }
    }
}

/// Values written as strings in TOML and parsed once, at load, into their type (an address,
/// a shard range): a bad one is an error naming its key, and nothing parses it again.
mod display_from_str {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }

    /// The same for an optional value.
    pub mod option {
        use super::*;

        pub fn serialize<T: Display, S: Serializer>(
            value: &Option<T>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(v) => s.collect_str(v),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
        where
            T: FromStr,
            T::Err: Display,
            D: Deserializer<'de>,
        {
            match Option::<String>::deserialize(d)? {
                Some(text) => text.parse().map(Some).map_err(D::Error::custom),
                None => Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::load::load;
    use super::*;

    fn load_errors(file: &str, text: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file), text).unwrap();
        let env = file.trim_end_matches(".toml");
        match load(dir.path(), env, vec![]) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn tts_voices_are_read_canonically_and_matched_by_primary_language() {
        let config: Config = toml::from_str(
            "[tts]\nproviders = []\n[tts.voices]\nfr = \"fr_FR-siwis-medium\"\npt_BR = \"faber\"\n",
        )
        .unwrap();
        assert_eq!(
            config.tts.voices.voice_for("fr").map(VoiceId::as_str),
            Some("fr_FR-siwis-medium")
        );
        assert_eq!(
            config.tts.voices.voice_for("fr-CA").map(VoiceId::as_str),
            Some("fr_FR-siwis-medium"),
            "a regional code falls back to its language"
        );
        assert_eq!(
            config.tts.voices.voice_for("pt-br").map(VoiceId::as_str),
            Some("faber")
        );
        assert_eq!(
            config.tts.voices.voice_for("pt"),
            None,
            "pt-br is not all of pt"
        );
        assert_eq!(config.tts.voices.voice_for("de"), None);
        assert_eq!(config.tts.voices.voice_for("not a code"), None);
    }

    #[test]
    fn a_bad_language_code_or_an_empty_voice_names_the_key_and_file() {
        let e = load_errors("staging.toml", "[tts.voices]\nfrench = \"x\"\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("staging.toml"), "{}", e[0]);
        assert!(e[0].contains("tts.voices"), "{}", e[0]);
        assert!(e[0].contains("`french` is not a language code"), "{}", e[0]);

        let e = load_errors("staging.toml", "[tts.voices]\nfr = \"  \"\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("staging.toml"), "{}", e[0]);
        assert!(e[0].contains("`tts.voices.fr`"), "{}", e[0]);
        assert!(e[0].contains("not empty"), "{}", e[0]);
    }

    #[test]
    fn pipeline_language_is_a_code_or_auto() {
        assert!(load_errors("staging.toml", "[pipeline]\nlanguage = \"auto\"\n").is_empty());
        assert!(load_errors("staging.toml", "[pipeline]\nlanguage = \"pt-BR\"\n").is_empty());
        let e = load_errors("staging.toml", "[pipeline]\nlanguage = \"english\"\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("`pipeline.language`"), "{}", e[0]);
        assert!(e[0].contains("`auto`"), "{}", e[0]);
    }
}
