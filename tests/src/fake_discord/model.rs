//! Discord's JSON objects as the real API sends them (users, members, roles, channels, guilds,
//! voice states, interactions, messages, commands), built from the fake's world. Ids are
//! strings (snowflakes), timestamps ISO 8601, permissions decimal strings: as on the wire.

use serde_json::{json, Value};

/// A fixed, plausible timestamp for `joined_at` and message times.
pub const TIMESTAMP: &str = "2026-03-01T12:00:00.000000+00:00";

/// Permission bits used by the fake (Discord's values).
pub mod perms {
    /// View Channel.
    pub const VIEW_CHANNEL: u64 = 1 << 10;
    /// Send Messages.
    pub const SEND_MESSAGES: u64 = 1 << 11;
    /// Connect.
    pub const CONNECT: u64 = 1 << 20;
    /// Speak.
    pub const SPEAK: u64 = 1 << 21;
    /// Use Voice Activity.
    pub const USE_VAD: u64 = 1 << 25;
    /// Use Application Commands.
    pub const USE_APPLICATION_COMMANDS: u64 = 1 << 31;
    /// What `@everyone` may do in a fresh server (Discord's default set).
    pub const EVERYONE_DEFAULT: u64 = 1_071_698_660_929 | USE_VAD;
}

/// A user of the fake world.
#[derive(Debug, Clone)]
pub struct UserSpec {
    /// Snowflake.
    pub id: u64,
    /// Login name.
    pub username: String,
    /// Display name (`global_name`).
    pub global_name: Option<String>,
    /// A server nickname.
    pub nick: Option<String>,
    /// Whether it is a bot account.
    pub bot: bool,
    /// Role ids in the guild (besides `@everyone`).
    pub roles: Vec<u64>,
}

/// A channel of the fake world.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    /// Snowflake.
    pub id: u64,
    /// Name.
    pub name: String,
    /// 0 text, 2 voice.
    pub kind: u8,
    /// Permission overwrites: (role or user id, 0 role / 1 member, allow, deny).
    pub overwrites: Vec<(u64, u8, u64, u64)>,
}

/// A role of the fake world.
#[derive(Debug, Clone)]
pub struct RoleSpec {
    /// Snowflake (the guild id for `@everyone`).
    pub id: u64,
    /// Name.
    pub name: String,
    /// Permission bits.
    pub permissions: u64,
}

/// `User`.
pub fn user(u: &UserSpec) -> Value {
    json!({
        "id": u.id.to_string(),
        "username": u.username,
        "discriminator": "0",
        "global_name": u.global_name,
        "avatar": null,
        "bot": u.bot,
        "system": false,
        "public_flags": 0,
        "flags": 0,
        "banner": null,
        "accent_color": null,
        "avatar_decoration_data": null,
    })
}

/// `Guild Member`.
pub fn member(guild_id: u64, u: &UserSpec, permissions: Option<u64>) -> Value {
    let mut m = json!({
        "user": user(u),
        "guild_id": guild_id.to_string(),
        "nick": u.nick,
        "avatar": null,
        "roles": u.roles.iter().map(u64::to_string).collect::<Vec<_>>(),
        "joined_at": TIMESTAMP,
        "premium_since": null,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "pending": false,
        "communication_disabled_until": null,
    });
    if let Some(p) = permissions {
        m["permissions"] = json!(p.to_string());
    }
    m
}

/// `Role`.
pub fn role(r: &RoleSpec, position: usize) -> Value {
    json!({
        "id": r.id.to_string(),
        "name": r.name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
        "hoist": false,
        "icon": null,
        "unicode_emoji": null,
        "position": position,
        "permissions": r.permissions.to_string(),
        "managed": false,
        "mentionable": false,
        "flags": 0,
    })
}

/// A guild `Channel`.
pub fn channel(guild_id: u64, c: &ChannelSpec, position: usize) -> Value {
    let mut v = json!({
        "id": c.id.to_string(),
        "type": c.kind,
        "guild_id": guild_id.to_string(),
        "name": c.name,
        "position": position,
        "permission_overwrites": c.overwrites.iter().map(|(id, kind, allow, deny)| json!({
            "id": id.to_string(),
            "type": kind,
            "allow": allow.to_string(),
            "deny": deny.to_string(),
        })).collect::<Vec<_>>(),
        "nsfw": false,
        "parent_id": null,
        "last_message_id": null,
        "rate_limit_per_user": 0,
        "flags": 0,
    });
    if c.kind == 2 || c.kind == 13 {
        v["bitrate"] = json!(64_000);
        v["user_limit"] = json!(0);
        v["rtc_region"] = json!(null);
    } else {
        v["topic"] = json!(null);
    }
    v
}

/// `Voice State`, with the member when `member` is given (as in VOICE_STATE_UPDATE).
pub fn voice_state(
    guild_id: u64,
    user_id: u64,
    channel_id: Option<u64>,
    session_id: &str,
    member: Option<Value>,
) -> Value {
    let mut v = json!({
        "guild_id": guild_id.to_string(),
        "channel_id": channel_id.map(|c| c.to_string()),
        "user_id": user_id.to_string(),
        "session_id": session_id,
        "deaf": false,
        "mute": false,
        "self_deaf": false,
        "self_mute": false,
        "self_stream": false,
        "self_video": false,
        "suppress": false,
        "request_to_speak_timestamp": null,
    });
    if let Some(m) = member {
        v["member"] = m;
    }
    v
}

/// A `Guild` as GUILD_CREATE sends it: roles, channels, members, voice states.
#[allow(clippy::too_many_arguments)]
pub fn guild_create(
    id: u64,
    name: &str,
    owner_id: u64,
    roles: &[RoleSpec],
    channels: &[ChannelSpec],
    members: &[&UserSpec],
    voice_states: &[(u64, u64, String)],
) -> Value {
    let head = json!({
        "id": id.to_string(),
        "name": name,
        "icon": null,
        "icon_hash": null,
        "splash": null,
        "discovery_splash": null,
        "owner_id": owner_id.to_string(),
        "afk_channel_id": null,
        "afk_timeout": 300,
        "widget_enabled": false,
        "widget_channel_id": null,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": roles.iter().enumerate().map(|(i, r)| role(r, i)).collect::<Vec<_>>(),
        "emojis": [],
        "features": [],
        "mfa_level": 0,
        "application_id": null,
        "system_channel_id": null,
        "system_channel_flags": 0,
        "rules_channel_id": null,
        "max_presences": null,
        "max_members": 500_000,
        "vanity_url_code": null,
        "description": null,
        "banner": null,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": null,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "nsfw_level": 0,
        "stickers": [],
        "premium_progress_bar_enabled": false,
        "safety_alerts_channel_id": null,
    });
    let rest = json!({
        "joined_at": TIMESTAMP,
        "large": false,
        "unavailable": false,
        "member_count": members.len(),
        "voice_states": voice_states.iter().map(|(user, channel, session)| json!({
            "channel_id": channel.to_string(),
            "user_id": user.to_string(),
            "session_id": session,
            "deaf": false,
            "mute": false,
            "self_deaf": false,
            "self_mute": false,
            "self_stream": false,
            "self_video": false,
            "suppress": false,
            "request_to_speak_timestamp": null,
        })).collect::<Vec<_>>(),
        "members": members.iter().map(|u| member(id, u, None)).collect::<Vec<_>>(),
        "channels": channels.iter().enumerate().map(|(i, c)| channel(id, c, i)).collect::<Vec<_>>(),
        "threads": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    });
    let mut guild = head;
    if let (Some(g), Value::Object(r)) = (guild.as_object_mut(), rest) {
        g.extend(r);
    }
    guild
}

/// READY's `d`.
pub fn ready(
    bot: &UserSpec,
    application_id: u64,
    guilds: &[u64],
    session_id: &str,
    resume_url: &str,
    shard: [u32; 2],
) -> Value {
    let mut me = user(bot);
    me["verified"] = json!(true);
    me["mfa_enabled"] = json!(false);
    me["email"] = json!(null);
    json!({
        "v": 10,
        "user": me,
        "guilds": guilds.iter().map(|g| json!({"id": g.to_string(), "unavailable": true})).collect::<Vec<_>>(),
        "session_id": session_id,
        "resume_gateway_url": resume_url,
        "shard": shard,
        "application": {"id": application_id.to_string(), "flags": 0},
        "private_channels": [],
        "relationships": [],
        "presences": [],
        "geo_ordered_rtc_regions": ["local"],
        "guild_join_requests": [],
        "user_settings": {},
        "_trace": ["fake-discord"],
    })
}

/// An application command interaction (`/voice <subcommand>`), as INTERACTION_CREATE's `d`.
#[allow(clippy::too_many_arguments)]
pub fn command_interaction(
    id: u64,
    token: &str,
    application_id: u64,
    command_id: u64,
    guild_id: u64,
    channel: &ChannelSpec,
    member_json: Value,
    subcommand: &str,
) -> Value {
    json!({
        "id": id.to_string(),
        "application_id": application_id.to_string(),
        "type": 2,
        "data": {
            "id": command_id.to_string(),
            "name": "voice",
            "type": 1,
            "options": [{"name": subcommand, "type": 1, "options": []}],
            "guild_id": guild_id.to_string(),
        },
        "guild_id": guild_id.to_string(),
        "channel": channel_partial(guild_id, channel),
        "channel_id": channel.id.to_string(),
        "member": member_json,
        "token": token,
        "version": 1,
        "app_permissions": (perms::EVERYONE_DEFAULT).to_string(),
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": guild_id.to_string()},
        "context": 0,
        "attachment_size_limit": 10_485_760,
    })
}

fn channel_partial(guild_id: u64, c: &ChannelSpec) -> Value {
    json!({
        "id": c.id.to_string(),
        "type": c.kind,
        "name": c.name,
        "guild_id": guild_id.to_string(),
        "permissions": perms::EVERYONE_DEFAULT.to_string(),
        "flags": 0,
    })
}

/// A `Message` the bot sent.
pub fn message(id: u64, channel_id: u64, author: &UserSpec, content: &str, flags: u64) -> Value {
    json!({
        "id": id.to_string(),
        "channel_id": channel_id.to_string(),
        "author": user(author),
        "content": content,
        "timestamp": TIMESTAMP,
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": false,
        "type": 0,
        "flags": flags,
        "components": [],
    })
}

/// An application command as Discord returns it after registration.
pub fn registered_command(
    body: &Value,
    id: u64,
    application_id: u64,
    guild_id: Option<u64>,
) -> Value {
    let mut v = body.clone();
    v["id"] = json!(id.to_string());
    v["application_id"] = json!(application_id.to_string());
    v["version"] = json!(id.to_string());
    v["type"] = body.get("type").cloned().unwrap_or(json!(1));
    v["default_member_permissions"] = body
        .get("default_member_permissions")
        .cloned()
        .unwrap_or(Value::Null);
    v["nsfw"] = json!(false);
    if let Some(g) = guild_id {
        v["guild_id"] = json!(g.to_string());
    }
    if v.get("options").is_none() {
        v["options"] = json!([]);
    }
    v
}

/// `GET /oauth2/applications/@me`.
pub fn application(application_id: u64, bot: &UserSpec, owner: &UserSpec) -> Value {
    json!({
        "id": application_id.to_string(),
        "name": bot.username,
        "icon": null,
        "description": "",
        "rpc_origins": [],
        "bot_public": true,
        "bot_require_code_grant": false,
        "bot": user(bot),
        "owner": user(owner),
        "summary": "",
        "verify_key": "0".repeat(64),
        "team": null,
        "flags": 0,
        "redirect_uris": [],
        "interactions_endpoint_url": null,
        "tags": [],
        "approximate_guild_count": 1,
    })
}

/// A Discord error body.
pub fn error(code: u64, message: &str) -> Value {
    json!({"message": message, "code": code})
}

/// The fake's payloads deserialize into serenity's models: what the real bot parses.
#[cfg(test)]
mod tests {
    use super::*;
    use serenity::all as s;

    fn alice() -> UserSpec {
        UserSpec {
            id: 201,
            username: "alice".into(),
            global_name: Some("Alice".into()),
            nick: Some("Ali".into()),
            bot: false,
            roles: vec![110],
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v.clone())
            .unwrap_or_else(|e| panic!("{e}\n{}", serde_json::to_string_pretty(&v).unwrap()))
    }

    #[test]
    fn guild_create_parses() {
        let roles = [RoleSpec {
            id: 100,
            name: "@everyone".into(),
            permissions: perms::EVERYONE_DEFAULT,
        }];
        let channels = [
            ChannelSpec {
                id: 101,
                name: "general".into(),
                kind: 0,
                overwrites: vec![],
            },
            ChannelSpec {
                id: 102,
                name: "Lounge".into(),
                kind: 2,
                overwrites: vec![(2, 1, 0, perms::CONNECT)],
            },
        ];
        let a = alice();
        let g: s::Guild = parse(guild_create(
            100,
            "Test",
            201,
            &roles,
            &channels,
            &[&a],
            &[(201, 102, "abc".into())],
        ));
        assert_eq!(
            g.voice_states[&s::UserId::new(201)].channel_id,
            Some(s::ChannelId::new(102))
        );
        assert_eq!(g.members[&s::UserId::new(201)].display_name(), "Ali");
        assert_eq!(g.channels.len(), 2);
    }

    #[test]
    fn ready_voice_state_and_interaction_parse() {
        let a = alice();
        let r: s::Ready = parse(ready(&a, 9, &[100], "sess", "ws://x", [0, 1]));
        assert_eq!(r.application.id, s::ApplicationId::new(9));
        let vs: s::VoiceState = parse(voice_state(
            100,
            201,
            Some(102),
            "sess",
            Some(member(100, &a, None)),
        ));
        assert_eq!(vs.member.unwrap().user.id, s::UserId::new(201));
        let channel = ChannelSpec {
            id: 101,
            name: "general".into(),
            kind: 0,
            overwrites: vec![],
        };
        let i: s::Interaction = parse(command_interaction(
            5,
            "tok",
            9,
            7,
            100,
            &channel,
            member(100, &a, Some(perms::EVERYONE_DEFAULT)),
            "join",
        ));
        let c = i.command().expect("a command interaction");
        assert_eq!(c.data.name, "voice");
        assert_eq!(c.user.id, s::UserId::new(201));
        assert_eq!(c.data.options[0].name, "join");
    }

    #[test]
    fn rest_answers_parse() {
        let a = alice();
        let _: s::Message = parse(message(1, 2, &a, "hi", 64));
        let _: s::CurrentUser = parse(user(&a));
        let _: s::CurrentApplicationInfo = parse(application(9, &a, &a));
        let body = serde_json::json!({"name": "voice", "description": "Voice", "type": 1,
            "options": [{"type": 1, "name": "join", "description": "Join"}]});
        let c: s::Command = parse(registered_command(&body, 3, 9, Some(100)));
        assert_eq!(c.name, "voice");
    }
}
