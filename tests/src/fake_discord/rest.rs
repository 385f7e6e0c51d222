//! The fake REST API under `/api/v10`, answering as Discord does (bodies, status codes, the
//! 401 body for a wrong token) and recording what the bot asked for.

use serde_json::{json, Value};

use super::{model, Shared, APPLICATION_ID};
use crate::fake_cloud::{Reply, Request};

fn json(status: u16, v: &Value) -> Reply {
    Reply::json(status, v)
}

fn not_found() -> Reply {
    json(404, &model::error(0, "404: Not Found"))
}

fn unauthorized() -> Reply {
    json(401, &model::error(0, "401: Unauthorized"))
}

pub(crate) fn handle(shared: &Shared, req: &Request) -> Reply {
    let reply = route(shared, req);
    shared.notify();
    reply
}

fn route(shared: &Shared, req: &Request) -> Reply {
    let path = req.path().to_string();
    let Some(rest) = path.strip_prefix("/api/v10/") else {
        shared
            .lock()
            .unknown_requests
            .push((req.method.clone(), path.clone()));
        return not_found();
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let method = req.method.as_str();
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let mut w = shared.lock();

    // Interaction callbacks and webhooks are authorised by the token in the URL.
    match (method, parts.as_slice()) {
        ("POST", ["interactions", id, token, "callback"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            return match w.interactions.get_mut(&id) {
                Some(i) if i.token == *token => {
                    if !i.callbacks.is_empty() {
                        // Discord: "Interaction has already been acknowledged."
                        return json(
                            400,
                            &model::error(40060, "Interaction has already been acknowledged."),
                        );
                    }
                    i.callbacks.push(body);
                    Reply::new(204)
                }
                _ => json(404, &model::error(10062, "Unknown interaction")),
            };
        }
        ("PATCH", ["webhooks", app, token, "messages", "@original"]) => {
            let app: u64 = app.parse().unwrap_or(0);
            let bot = w.bot.clone();
            let id = w.next_id();
            let Some(i) = w
                .interactions
                .values_mut()
                .find(|i| i.token == *token && app == APPLICATION_ID)
            else {
                return json(404, &model::error(10015, "Unknown Webhook"));
            };
            if i.callbacks.is_empty() {
                return json(404, &model::error(10008, "Unknown Message"));
            }
            i.edits.push(body.clone());
            let flags = i.callbacks[0]["data"]["flags"].as_u64().unwrap_or(0);
            let channel = i.guild + 1;
            let content = body["content"].as_str().unwrap_or_default();
            return json(200, &model::message(id, channel, &bot, content, flags));
        }
        ("POST", ["webhooks", app, token]) => {
            let app: u64 = app.parse().unwrap_or(0);
            let bot = w.bot.clone();
            let id = w.next_id();
            let Some(i) = w
                .interactions
                .values_mut()
                .find(|i| i.token == *token && app == APPLICATION_ID)
            else {
                return json(404, &model::error(10015, "Unknown Webhook"));
            };
            i.followups.push(body.clone());
            let flags = body["flags"].as_u64().unwrap_or(0);
            let content = body["content"].as_str().unwrap_or_default();
            return json(200, &model::message(id, i.guild + 1, &bot, content, flags));
        }
        _ => {}
    }

    let auth = req
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let Some(me) = auth
        .strip_prefix("Bot ")
        .and_then(|t| w.identity_of_token(t))
        .cloned()
    else {
        return unauthorized();
    };

    match (method, parts.as_slice()) {
        ("GET", ["gateway"]) => json(200, &json!({"url": w.gateway_url})),
        ("GET", ["gateway", "bot"]) => json(
            200,
            &json!({
                "url": w.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1
                },
            }),
        ),
        ("GET", ["users", "@me"]) => {
            let mut me = model::user(&me);
            me["verified"] = json!(true);
            me["mfa_enabled"] = json!(false);
            json(200, &me)
        }
        ("GET", ["oauth2", "applications", "@me"]) => {
            json(200, &model::application(APPLICATION_ID, &w.bot, &w.owner))
        }
        ("PUT", ["applications", app, "commands"]) => register(&mut w, app, None, &body, true),
        ("POST", ["applications", app, "commands"]) => register(&mut w, app, None, &body, false),
        ("PUT", ["applications", app, "guilds", guild, "commands"]) => {
            let guild = guild.parse().ok();
            if guild.is_none_or(|g| !w.guilds.contains_key(&g)) {
                return json(404, &model::error(10004, "Unknown Guild"));
            }
            register(&mut w, app, guild, &body, true)
        }
        ("POST", ["applications", app, "guilds", guild, "commands"]) => {
            let guild = guild.parse().ok();
            if guild.is_none_or(|g| !w.guilds.contains_key(&g)) {
                return json(404, &model::error(10004, "Unknown Guild"));
            }
            register(&mut w, app, guild, &body, false)
        }
        ("POST", ["channels", channel, "messages"]) => {
            let Ok(channel) = channel.parse::<u64>() else {
                return not_found();
            };
            let known = w
                .guilds
                .values()
                .any(|g| g.channels.iter().any(|c| c.id == channel && c.kind == 0));
            if !known {
                return json(404, &model::error(10003, "Unknown Channel"));
            }
            let content = body["content"].as_str().unwrap_or_default().to_string();
            if content.chars().count() > 2000 {
                return json(
                    400,
                    &model::error(
                        50035,
                        "Invalid Form Body (content: Must be 2000 or fewer in length.)",
                    ),
                );
            }
            w.messages.push((channel, content.clone()));
            let id = w.next_id();
            let bot = w.bot.clone();
            json(200, &model::message(id, channel, &bot, &content, 0))
        }
        ("GET", ["guilds", guild, "members", user]) => {
            let (Ok(guild), Ok(user)) = (guild.parse::<u64>(), user.parse::<u64>()) else {
                return not_found();
            };
            match w.member_json(guild, user) {
                Some(m) => json(200, &m),
                None => json(404, &model::error(10007, "Unknown Member")),
            }
        }
        _ => {
            w.unknown_requests.push((req.method.clone(), path.clone()));
            not_found()
        }
    }
}

/// Records application commands (a list for `PUT`, one for `POST`) and answers with them as
/// Discord does, ids assigned.
fn register(
    w: &mut super::World,
    app: &str,
    guild: Option<u64>,
    body: &Value,
    bulk: bool,
) -> Reply {
    if app.parse::<u64>().ok() != Some(APPLICATION_ID) {
        return json(403, &model::error(50001, "Missing Access"));
    }
    let commands: Vec<Value> = if bulk {
        match body.as_array() {
            Some(list) => list.clone(),
            None => return json(400, &model::error(50035, "Invalid Form Body")),
        }
    } else {
        vec![body.clone()]
    };
    for c in &commands {
        let name_ok = c["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty() && n.len() <= 32 && n == n.to_lowercase());
        let description_ok = c["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty() && d.chars().count() <= 100);
        if !name_ok || !description_ok {
            return json(400, &model::error(50035, "Invalid Form Body"));
        }
    }
    if bulk {
        w.registered.retain(|(g, _)| *g != guild);
    }
    let mut out = Vec::new();
    for c in commands {
        w.registered.push((guild, c.clone()));
        let id = w.next_id();
        out.push(model::registered_command(&c, id, APPLICATION_ID, guild));
    }
    if bulk {
        json(200, &Value::Array(out))
    } else {
        json(201, &out[0])
    }
}
