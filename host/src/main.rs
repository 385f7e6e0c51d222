//! The `openclaw-voice` binary: parses the command line, runs the command, and turns errors
//! into one readable report and an exit code. `anyhow` lives only here.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use openclaw_voice::cli::{Cli, Command, PluginsCommand};
use openclaw_voice::commands;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<ExitCode> = runtime.block_on(async {
        match &cli.command {
            Command::CheckConfig => commands::check_config(&cli).await,
            Command::Plugins {
                command: PluginsCommand::List { dir, json },
            } => commands::plugins_list(&cli, dir.as_deref(), *json),
            Command::Simulate(args) => {
                let inputs = commands::simulate_inputs(&matches, args)?;
                commands::simulate(&cli, args, inputs).await
            }
            Command::Run => commands::run(&cli).await,
            Command::RegisterCommands { .. } | Command::InviteUrl => {
                commands::not_yet_available(&cli.command)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}
