//! `invite-url` and `register-commands`: one call each to Discord's API with the bot token.

use std::process::ExitCode;

use super::load_config;
use crate::cli::Cli;
use crate::config;
use crate::telemetry;
use crate::voice::discord;

/// `invite-url`: prints the URL that adds the bot to a server, with the permissions it uses.
/// The application id comes from `discord.application_id`, or from Discord with the token.
pub async fn invite_url(cli: &Cli) -> anyhow::Result<ExitCode> {
    let loaded = load_config(cli)?;
    telemetry::init(&loaded);
    let config = &loaded.config.discord;
    let application_id = match config.application_id {
        Some(id) => id,
        None => match discord::BotToken::from_env(config) {
            Ok(token) => discord::Api::new(config, &token).application_id().await?,
            Err(_) => {
                return Err(config::ConfigError::Invalid {
                    origin: "configuration".into(),
                    key: "discord.application_id".into(),
                    reason: format!(
                        "`invite-url` needs the bot's application id: set it \
                         (OPENCLAW__DISCORD__APPLICATION_ID) to the Application ID on the \
                         Developer Portal's General Information page, or set {} to the bot \
                         token to look it up",
                        config.token_env
                    ),
                }
                .into())
            }
        },
    };
    println!("{}", discord::invite_url(application_id));
    Ok(ExitCode::SUCCESS)
}

/// `register-commands [--guild ID]`: registers `/voice` globally or in one guild and prints
/// what Discord registered.
pub async fn register_commands(cli: &Cli, guild: Option<u64>) -> anyhow::Result<ExitCode> {
    let loaded = load_config(cli)?;
    telemetry::init(&loaded);
    let config = &loaded.config.discord;
    let token = discord::BotToken::from_env(config)?;
    let api = discord::Api::new(config, &token);
    let registered = api.register_commands(guild).await?;
    let application_id = api.application_id().await?;
    match guild {
        None => println!(
            "registered {} command(s) globally for application {application_id} \
             (new global commands can take up to an hour to appear in every server):",
            registered.len()
        ),
        Some(g) => println!(
            "registered {} command(s) in guild {g} for application {application_id} \
             (available there at once):",
            registered.len()
        ),
    }
    for command in &registered {
        let subcommands: Vec<_> = command
            .options
            .iter()
            .filter(|o| o.kind == serenity::all::CommandOptionType::SubCommand)
            .collect();
        if subcommands.is_empty() {
            println!(
                "  /{} (id {}): {}",
                command.name, command.id, command.description
            );
        }
        for option in subcommands {
            println!(
                "  /{} {} (id {}): {}",
                command.name, option.name, command.id, option.description
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
