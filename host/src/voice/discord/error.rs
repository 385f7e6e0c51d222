//! Errors of the Discord transport, each saying what to do next.

/// What went wrong talking to Discord.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscordError {
    /// The token variable is not set.
    #[error(
        "environment variable {var} is not set (or empty), and Discord needs it (named by \
         `discord.token_env`): set {var} to the bot token from the Developer Portal (Bot → Reset \
         Token)"
    )]
    MissingToken {
        /// The variable.
        var: String,
    },
    /// Discord refused the token (401).
    #[error(
        "Discord refused the bot token in {var} (401 Unauthorized): it is wrong, revoked or \
         not a bot token; copy it again from the Developer Portal (Bot → Reset Token)"
    )]
    BadToken {
        /// The variable holding it.
        var: String,
    },
    /// Discord could not be reached.
    #[error("cannot reach Discord's API at {base}: {reason}")]
    Unreachable {
        /// The API base URL.
        base: String,
        /// Why.
        reason: String,
    },
    /// Discord answered with an error.
    #[error("Discord refused to {action}: {reason}")]
    Api {
        /// What was asked (`register the commands`).
        action: String,
        /// Status and Discord's message.
        reason: String,
    },
    /// The gateway connection ended with an error.
    #[error("the Discord gateway connection failed: {0}")]
    Gateway(String),
}

impl DiscordError {
    /// Classifies a serenity error from an HTTP call.
    pub(crate) fn from_http(
        e: serenity::Error,
        action: &str,
        token_var: &str,
        base: &str,
    ) -> DiscordError {
        use serenity::http::HttpError;
        match e {
            serenity::Error::Http(HttpError::UnsuccessfulRequest(resp)) => {
                if resp.status_code.as_u16() == 401 {
                    DiscordError::BadToken {
                        var: token_var.to_string(),
                    }
                } else {
                    DiscordError::Api {
                        action: action.to_string(),
                        reason: format!(
                            "{} {} (code {})",
                            resp.status_code, resp.error.message, resp.error.code
                        ),
                    }
                }
            }
            serenity::Error::Http(HttpError::Request(e)) => DiscordError::Unreachable {
                base: base.to_string(),
                reason: without_url(&e),
            },
            other => DiscordError::Api {
                action: action.to_string(),
                reason: other.to_string(),
            },
        }
    }
}

/// A reqwest error's message with its source chain, the URL left out (it may hold a token).
fn without_url(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    if let Some(i) = text.find(" for url (") {
        text.truncate(i);
    }
    crate::telemetry::with_sources(text, e.source())
}
