//! Talking to Discord's HTTP API: the token from its environment variable, a serenity `Http`
//! aimed at `discord.api_base_url` (serenity's proxy setting) or discord.com, and the calls
//! the commands make outside the gateway (who am I, which application, register commands).

use serenity::all::{ApplicationId, Command, GuildId, Http, HttpBuilder};

use super::slash;
use secrecy::{ExposeSecret, SecretString};

use super::DiscordError;
use crate::config::DiscordConfig;

/// Discord's API base when `discord.api_base_url` is not set.
pub(crate) const DEFAULT_API_BASE: &str = "https://discord.com";

/// The bot token (a `secrecy` secret: `Debug` never shows it, and it is zeroed when dropped).
#[derive(Clone, Debug)]
pub struct BotToken(SecretString);

impl BotToken {
    /// Reads the variable `discord.token_env` names.
    pub fn from_env(config: &DiscordConfig) -> Result<BotToken, DiscordError> {
        match std::env::var(&config.token_env) {
            Ok(v) if !v.trim().is_empty() => Ok(BotToken(v.trim().into())),
            _ => Err(DiscordError::MissingToken {
                var: config.token_env.clone(),
            }),
        }
    }

    /// The token itself, for serenity.
    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A connection to the HTTP API with the token, as the gateway client also uses it.
pub struct Api {
    /// serenity's client.
    pub http: Http,
    base: String,
    token_var: String,
}

impl Api {
    /// An API client for `config` with `token`.
    pub fn new(config: &DiscordConfig, token: &BotToken) -> Api {
        let mut builder = HttpBuilder::new(token.expose());
        let base = match &config.api_base_url {
            Some(url) => {
                let url = url.trim_end_matches('/').to_string();
                // serenity's rate limiter builds requests without the proxy (0.12), so a
                // proxy only takes effect with it off; a proxy is expected to limit itself.
                builder = builder.proxy(url.clone()).ratelimiter_disabled(true);
                url
            }
            None => DEFAULT_API_BASE.to_string(),
        };
        if let Some(id) = config.application_id {
            builder = builder.application_id(ApplicationId::new(id));
        }
        Api {
            http: builder.build(),
            base,
            token_var: config.token_env.clone(),
        }
    }

    /// Maps a serenity error from `action`.
    pub fn error(&self, e: serenity::Error, action: &str) -> DiscordError {
        DiscordError::from_http(e, action, &self.token_var, &self.base)
    }

    /// Checks the token (`GET /users/@me`); the bot's user name and id.
    pub(crate) async fn whoami(&self) -> Result<(String, u64), DiscordError> {
        let me = self
            .http
            .get_current_user()
            .await
            .map_err(|e| self.error(e, "tell who the bot is"))?;
        Ok((me.name.clone(), me.id.get()))
    }

    /// The application id: configured, or asked of Discord (`GET /oauth2/applications/@me`).
    pub async fn application_id(&self) -> Result<u64, DiscordError> {
        if let Some(id) = self.http.application_id() {
            return Ok(id.get());
        }
        let info = self
            .http
            .get_current_application_info()
            .await
            .map_err(|e| self.error(e, "tell the bot's application"))?;
        self.http.set_application_id(info.id);
        Ok(info.id.get())
    }

    /// Registers the `/voice` commands globally or in one guild (replacing what was there);
    /// what Discord registered.
    pub async fn register_commands(
        &self,
        guild: Option<u64>,
    ) -> Result<Vec<Command>, DiscordError> {
        self.whoami().await?;
        self.application_id().await?;
        let commands = slash::definitions();
        let result = match guild {
            None => Command::set_global_commands(&self.http, commands).await,
            Some(id) => GuildId::new(id).set_commands(&self.http, commands).await,
        };
        result.map_err(|e| self.error(e, "register the slash commands"))
    }
}
