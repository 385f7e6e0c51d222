//! The OAuth2 invite URL: the scopes and the permission integer, computed from serenity's
//! `Permissions` for exactly what the bot uses.

use serenity::all::Permissions;

/// What the bot needs in a server, each for one reason:
///
/// - View Channel: see the voice channel to join and the transcript channel;
/// - Send Messages: post transcripts and replies in `discord.transcript_channel`;
/// - Connect, Speak: join a voice channel and talk in it;
/// - Use Voice Activity: speak without push-to-talk;
/// - Use Application Commands: the `/voice` commands.
pub fn bot_permissions() -> Permissions {
    Permissions::VIEW_CHANNEL
        | Permissions::SEND_MESSAGES
        | Permissions::CONNECT
        | Permissions::SPEAK
        | Permissions::USE_VAD
        | Permissions::USE_APPLICATION_COMMANDS
}

/// The scopes the invite asks for.
pub(crate) const SCOPES: &str = "bot applications.commands";

/// The URL that adds the bot to a server with [`bot_permissions`].
pub fn invite_url(application_id: u64) -> String {
    format!(
        "https://discord.com/oauth2/authorize?client_id={application_id}&scope={}&permissions={}",
        SCOPES.replace(' ', "%20"),
        bot_permissions().bits()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permission_integer_is_pinned() {
        // 1<<10 | 1<<11 | 1<<20 | 1<<21 | 1<<25 | 1<<31. The original design's 370688 is Send
        // Messages, Manage Messages, Attach Files, Read Message History and Use External
        // Emojis: no Connect or Speak at all.
        assert_eq!(bot_permissions().bits(), 2_184_186_880);
        assert_ne!(bot_permissions().bits(), 370_688);
    }

    #[test]
    fn the_url_has_both_scopes() {
        assert_eq!(
            invite_url(42),
            "https://discord.com/oauth2/authorize?client_id=42\
             &scope=bot%20applications.commands&permissions=2184186880"
        );
    }
}
