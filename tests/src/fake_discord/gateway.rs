//! The fake gateway: Discord's websocket protocol (v10, JSON, uncompressed) for one or more
//! shards: Hello → Identify → READY + GUILD_CREATE; heartbeats; Resume; op 4 voice state
//! updates answered with VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE; dispatches the tests
//! ask for (INTERACTION_CREATE, users moving).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::{model, random_hex, ShardConn, Shared};

/// Intents the bot must ask for: GUILDS and GUILD_VOICE_STATES.
const REQUIRED_INTENTS: u64 = 1 | (1 << 7);

/// What a gateway connection sends.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A dispatch (`op` 0) with this event name and data.
    Dispatch(String, Value),
    /// A raw payload.
    Raw(Value),
    /// Close with this code.
    Close(u16),
}

static CONN_IDS: AtomicU64 = AtomicU64::new(1);

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(session(stream, shared.clone()));
    }
}

async fn session(stream: TcpStream, shared: Arc<Shared>) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let conn_id = CONN_IDS.fetch_add(1, Ordering::Relaxed);
    let mut seq = 0u64;
    let hello = json!({"op": 10, "d": {"heartbeat_interval": 41_250}, "s": null, "t": null});
    if sink.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            incoming = source.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(_))) => {
                        let _ = tx.send(Outgoing::Close(4002));
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let Ok(payload) = serde_json::from_str::<Value>(&text) else {
                    let _ = tx.send(Outgoing::Close(4002));
                    continue;
                };
                handle(&shared, conn_id, &tx, &payload);
            }
            out = rx.recv() => {
                let Some(out) = out else { break };
                let payload = match out {
                    Outgoing::Dispatch(event, data) => {
                        seq += 1;
                        json!({"op": 0, "t": event, "s": seq, "d": data})
                    }
                    Outgoing::Raw(v) => v,
                    Outgoing::Close(code) => {
                        let frame = CloseFrame { code: CloseCode::from(code), reason: "fake".into() };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        break;
                    }
                };
                if sink.send(Message::text(payload.to_string())).await.is_err() {
                    break;
                }
            }
        }
    }
    let mut w = shared.lock();
    w.shards.retain(|s| s.conn_id != conn_id);
    drop(w);
    shared.notify();
}

fn handle(shared: &Shared, conn_id: u64, tx: &mpsc::UnboundedSender<Outgoing>, p: &Value) {
    let d = &p["d"];
    match p["op"].as_u64() {
        // Heartbeat.
        Some(1) => {
            let _ = tx.send(Outgoing::Raw(
                json!({"op": 11, "d": null, "s": null, "t": null}),
            ));
        }
        // Identify.
        Some(2) => identify(shared, conn_id, tx, d),
        // Presence update: nothing to do.
        Some(3) => {}
        // Voice state update.
        Some(4) => voice_state_update(shared, conn_id, d),
        // Resume.
        Some(6) => {
            let mut w = shared.lock();
            let token = d["token"].as_str().unwrap_or_default();
            let Some(user) = w.identity_of_token(token).map(|u| u.id) else {
                let _ = tx.send(Outgoing::Close(4004));
                return;
            };
            let session_id = d["session_id"].as_str().unwrap_or_default().to_string();
            let shard = w
                .identifies
                .iter()
                .rev()
                .find(|i| i["session_id"] == json!(session_id))
                .and_then(|i| serde_json::from_value::<[u32; 2]>(i["shard"].clone()).ok());
            match shard {
                Some(shard) => {
                    w.shards.push(ShardConn {
                        conn_id,
                        user,
                        shard,
                        tx: tx.clone(),
                    });
                    w.gateway_resumes += 1;
                    let _ = tx.send(Outgoing::Dispatch("RESUMED".into(), json!({"_trace": []})));
                }
                None => {
                    let _ = tx.send(Outgoing::Raw(
                        json!({"op": 9, "d": false, "s": null, "t": null}),
                    ));
                }
            }
            drop(w);
            shared.notify();
        }
        // Request guild members, soundboard: not used by the bot.
        _ => {}
    }
}

fn identify(shared: &Shared, conn_id: u64, tx: &mpsc::UnboundedSender<Outgoing>, d: &Value) {
    let mut w = shared.lock();
    let token = d["token"].as_str().unwrap_or_default();
    let Some(me) = w.identity_of_token(token).cloned() else {
        // Authentication failed.
        let _ = tx.send(Outgoing::Close(4004));
        return;
    };
    let intents = d["intents"].as_u64().unwrap_or(0);
    if intents & REQUIRED_INTENTS != REQUIRED_INTENTS {
        // Disallowed intents is 4014; a missing intent is the bot's bug, reported as invalid.
        let _ = tx.send(Outgoing::Close(4013));
        return;
    }
    let shard: [u32; 2] = serde_json::from_value(d["shard"].clone()).unwrap_or([0, 1]);
    if shard[1] == 0 || shard[0] >= shard[1] {
        let _ = tx.send(Outgoing::Close(4010));
        return;
    }
    let session_id = random_hex(16);
    let mut recorded = d.clone();
    recorded["token"] = json!("(redacted)");
    recorded["session_id"] = json!(session_id);
    recorded["shard"] = json!(shard);
    w.identifies.push(recorded);
    let guilds: Vec<u64> = w
        .guilds
        .keys()
        .copied()
        .filter(|g| ((g >> 22) % u64::from(shard[1])) as u32 == shard[0])
        .collect();
    let ready = model::ready(
        &me,
        super::APPLICATION_ID,
        &guilds,
        &session_id,
        &w.gateway_url,
        shard,
    );
    let _ = tx.send(Outgoing::Dispatch("READY".into(), ready));
    for id in &guilds {
        let g = &w.guilds[id];
        let members: Vec<&model::UserSpec> = g.members.values().collect();
        let voice_states: Vec<(u64, u64, String)> = g
            .voice_states
            .iter()
            .map(|(u, (c, s))| (*u, *c, s.clone()))
            .collect();
        let create = model::guild_create(
            g.id,
            &g.name,
            w.owner.id,
            &g.roles,
            &g.channels,
            &members,
            &voice_states,
        );
        let _ = tx.send(Outgoing::Dispatch("GUILD_CREATE".into(), create));
    }
    w.shards.push(ShardConn {
        conn_id,
        user: me.id,
        shard,
        tx: tx.clone(),
    });
    drop(w);
    shared.notify();
}

fn voice_state_update(shared: &Shared, conn_id: u64, d: &Value) {
    let mut w = shared.lock();
    let Some(user) = w
        .shards
        .iter()
        .find(|s| s.conn_id == conn_id)
        .map(|s| s.user)
    else {
        return;
    };
    w.voice_state_updates.push(d.clone());
    let Some(guild) = id_of(&d["guild_id"]) else {
        return;
    };
    if !w.guilds.contains_key(&guild) {
        return;
    }
    let channel = id_of(&d["channel_id"]);
    if user == w.bot.id {
        place_bot(&mut w, guild, channel);
    } else {
        place_peer(&mut w, guild, user, channel);
    }
    drop(w);
    shared.notify();
}

/// Puts the bot in `channel` (or out of voice) in `guild`, as Discord does after an op 4 or a
/// moderator's move: VOICE_STATE_UPDATE with a new voice session, then VOICE_SERVER_UPDATE
/// with a new token when in a channel.
pub(crate) fn place_bot(w: &mut super::World, guild: u64, channel: Option<u64>) {
    let bot_id = w.bot.id;
    let session_id = random_hex(16);
    let member = w.member_json(guild, bot_id);
    {
        let g = w.guilds.get_mut(&guild).expect("checked above");
        match channel {
            Some(c) => {
                g.voice_states.insert(bot_id, (c, session_id.clone()));
            }
            None => {
                g.voice_states.remove(&bot_id);
            }
        }
    }
    let token = random_hex(8);
    let endpoint = w.voice_endpoint.clone();
    let slot = w.voice.entry(guild).or_default();
    slot.channel = channel;
    slot.session_id = session_id.clone();
    slot.token = token.clone();
    if channel.is_none() {
        if let Some(conn) = slot.conn.take() {
            let _ = conn.tx.send(super::voice::Outgoing::Close(4014));
            w.dave_ended.insert(guild, conn.dave.status());
        }
    }
    w.dispatch_all(
        guild,
        "VOICE_STATE_UPDATE",
        &model::voice_state(guild, bot_id, channel, &session_id, member),
    );
    if channel.is_some() {
        w.dispatch(
            guild,
            "VOICE_SERVER_UPDATE",
            json!({"token": token, "guild_id": guild.to_string(), "endpoint": endpoint}),
        );
    }
}

/// Puts another bot identity (`user`) in `channel` (or out of voice) of `guild` after its
/// op 4: VOICE_STATE_UPDATE to every bot in the guild, VOICE_SERVER_UPDATE to it, and
/// ClientsConnect/ClientDisconnect on the bot under test's voice connection when that is in
/// the channel joined or left.
pub(crate) fn place_peer(w: &mut super::World, guild: u64, user: u64, channel: Option<u64>) {
    let session_id = random_hex(16);
    let member = w.member_json(guild, user);
    let before = w.voice_channel_of(guild, user);
    if let Some(g) = w.guilds.get_mut(&guild) {
        match channel {
            Some(c) => g.voice_states.insert(user, (c, session_id.clone())),
            None => g.voice_states.remove(&user),
        };
    }
    let token = random_hex(8);
    let endpoint = w.voice_endpoint.clone();
    let slot = w.peer_voice.entry((guild, user)).or_default();
    slot.channel = channel;
    slot.session_id = session_id.clone();
    slot.token = token.clone();
    if channel.is_none() {
        if let Some(conn) = slot.conn.take() {
            let _ = conn.tx.send(super::voice::Outgoing::Close(4014));
        }
    }
    w.dispatch_all(
        guild,
        "VOICE_STATE_UPDATE",
        &model::voice_state(guild, user, channel, &session_id, member),
    );
    if channel.is_some() {
        w.dispatch_to(
            user,
            guild,
            "VOICE_SERVER_UPDATE",
            json!({"token": token, "guild_id": guild.to_string(), "endpoint": endpoint}),
        );
    }
    let bot_channel = w.bot_channel(guild);
    if let Some(conn) = w.voice.get_mut(&guild).and_then(|s| s.conn.as_mut()) {
        if before.is_some() && before == bot_channel && channel != before {
            let _ = conn.tx.send(super::voice::Outgoing::Json(
                json!({"op": 13, "d": {"user_id": user.to_string()}}),
            ));
            conn.dave.peer_left(user, &conn.tx);
        } else if channel.is_some() && channel == bot_channel && before != channel {
            let _ = conn.tx.send(super::voice::Outgoing::Json(
                json!({"op": 11, "d": {"user_ids": [user.to_string()]}}),
            ));
        }
    }
}

/// A snowflake sent as a string (Discord's way) or as a number.
fn id_of(v: &Value) -> Option<u64> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64())
}
