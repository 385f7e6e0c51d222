//! The `/voice` slash command: its definition (registered by `register-commands`) and how an
//! interaction names a subcommand.

use serenity::all::{
    CommandDataOptionValue, CommandInteraction, CommandOptionType, CreateCommand,
    CreateCommandOption, InteractionContext,
};

/// The command's name.
pub const NAME: &str = "voice";

/// A `/voice` subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subcommand {
    /// Join the caller's voice channel.
    Join,
    /// Leave the voice channel.
    Leave,
    /// Report the session.
    Status,
    /// Delete what the bot keeps about the caller.
    Forget,
}

impl Subcommand {
    /// Every subcommand, with its name and description.
    pub(crate) const ALL: [(Subcommand, &'static str, &'static str); 4] = [
        (
            Subcommand::Join,
            "join",
            "Join your voice channel and answer what is said there",
        ),
        (Subcommand::Leave, "leave", "Leave the voice channel"),
        (
            Subcommand::Status,
            "status",
            "Show the voice session: channel, speakers, providers, latency",
        ),
        (
            Subcommand::Forget,
            "forget",
            "Delete what the bot keeps about you: conversation memory, settings you changed",
        ),
    ];

    /// The subcommand an interaction asks for, if it is `/voice <known>`.
    pub fn of(interaction: &CommandInteraction) -> Option<Subcommand> {
        if interaction.data.name != NAME {
            return None;
        }
        let option = interaction.data.options.first()?;
        if !matches!(option.value, CommandDataOptionValue::SubCommand(_)) {
            return None;
        }
        Self::ALL
            .iter()
            .find(|(_, name, _)| *name == option.name)
            .map(|(s, _, _)| *s)
    }
}

/// The definitions to register: `/voice` with its subcommands, and `/voice-settings`
/// (Manage Server by default, see `settings`); guild-only.
pub(crate) fn definitions() -> Vec<CreateCommand> {
    let mut command = CreateCommand::new(NAME)
        .description("Talk with the assistant in a voice channel")
        .contexts(vec![InteractionContext::Guild]);
    for (_, name, description) in Subcommand::ALL {
        command = command.add_option(CreateCommandOption::new(
            CommandOptionType::SubCommand,
            name,
            description,
        ));
    }
    vec![command, super::settings::definition()]
}
