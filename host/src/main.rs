//! The `openclaw-voice` binary: parses the command line, runs the command, and turns errors
//! into one readable report and an exit code (and, when Sentry is on, one error report).
//! `anyhow` lives only here.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use openclaw_voice::cli::{
    exit, Cli, Command, DiscordCommand, PluginsCommand, UsageError, WyomingCommand,
};
use openclaw_voice::{commands, telemetry};

/// Runs the command the line asks for (all but `plugin-worker`, which runs before any
/// runtime exists).
async fn dispatch(cli: &Cli, matches: &clap::ArgMatches) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::CheckConfig { probe, print } => commands::check_config(cli, *probe, *print).await,
        Command::Plugins {
            command: PluginsCommand::List { dir, json },
        } => commands::plugins_list(cli, dir.as_deref(), *json),
        Command::Plugins {
            command:
                PluginsCommand::New {
                    name,
                    stt,
                    tts: _,
                    path,
                    api_path,
                },
        } => commands::plugins_new(&commands::NewPlugin {
            name: name.clone(),
            stt: *stt,
            path: path.clone(),
            api_path: api_path.clone(),
        }),
        Command::Simulate(args) => {
            let inputs = commands::simulate_inputs(matches, args)?;
            commands::simulate(cli, args, inputs).await
        }
        Command::Run => commands::run(cli).await,
        Command::InviteUrl => commands::invite_url(cli).await,
        Command::RegisterCommands { guild } => commands::register_commands(cli, *guild).await,
        Command::Completions { shell } => {
            let mut command = Cli::command();
            let out = &mut std::io::stdout();
            clap_complete::generate(*shell, &mut command, "openclaw-voice", out);
            Ok(ExitCode::SUCCESS)
        }
        Command::Wyoming {
            command: WyomingCommand::Serve { bind },
        } => commands::wyoming::serve(cli, bind).await,
        Command::Discord {
            command: DiscordCommand::Speak(args),
        } => commands::discord_speak(cli, args).await,
        Command::PluginWorker { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// glibc heap arenas a process may use (host and plugin workers alike).
const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's heap arenas at [`MALLOC_ARENAS`], as `MALLOC_ARENA_MAX` would (that variable,
/// when set, wins). glibc gives each thread that allocates under contention its own arena (up
/// to 8 per core) and seldom returns their freed memory: ONNX Runtime's calls in the host and
/// overlapping transcriptions in the Whisper worker grew 33 MB so on one `simulate` run
/// (docs/BENCHMARKS.md, "Turn taking"). Called before any thread exists; a no-op elsewhere.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter, before any other thread exists;
        // a refused setting (it returns 0) leaves glibc's default.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // A plugin worker runs no async runtime, logging or Sentry of its own: it only serves
    // the plugin over its pipes (or inspects one library and exits).
    if let Command::PluginWorker {
        memory_limit_mb,
        probe,
    } = &cli.command
    {
        let code = match probe {
            Some(path) => openclaw_voice::plugins::probe::answer(path),
            None => openclaw_voice::plugins::worker::serve::serve(*memory_limit_mb),
        };
        std::process::exit(code);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let run = || runtime.block_on(dispatch(&cli, &matches));
    // A panic was reported by Sentry's panic hook; it still has to be sent before exiting.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
    let code = match result {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            let mut report = format!("error: {e}");
            for cause in e.chain().skip(1) {
                report.push_str(&format!("\n  caused by: {cause}"));
            }
            eprintln!("{report}");
            telemetry::capture_fatal(&report);
            ExitCode::from(exit_status(&e))
        }
        Err(_) => ExitCode::from(exit::PANIC),
    };
    telemetry::shutdown(telemetry::sentry::SHUTDOWN_TIMEOUT);
    // Dropping a runtime waits for every blocking task, and a plugin call that hangs in this
    // process never returns: give them a moment, then leave them (the commands have already
    // honoured the shutdown deadline and written their output).
    runtime.shutdown_timeout(RUNTIME_GRACE);
    code
}

/// How long blocking tasks still running at exit (a hung in-process plugin call) may delay it.
const RUNTIME_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// The exit status for an error: [`exit::CONFIG`] when the configuration or the environment
/// is what is wrong, else [`exit::FAILURE`].
fn exit_status(e: &anyhow::Error) -> u8 {
    use openclaw_voice::config::{ConfigError, ConfigErrors};
    use openclaw_voice::voice::discord::DiscordError;
    let config = e.chain().any(|cause| {
        cause.is::<ConfigErrors>()
            || cause.is::<ConfigError>()
            || matches!(
                cause.downcast_ref::<DiscordError>(),
                Some(DiscordError::MissingToken { .. })
            )
    });
    if config {
        exit::CONFIG
    } else if e.chain().any(|cause| cause.is::<UsageError>()) {
        exit::USAGE
    } else {
        exit::FAILURE
    }
}
