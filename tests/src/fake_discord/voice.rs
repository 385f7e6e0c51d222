//! The fake voice server: the voice gateway (JSON and binary frames over `wss://`, at the
//! version the client asks for: songbird 0.6.1 asks for v4) and the UDP media socket.
//!
//! Gateway: Identify (server, session and token checked against the VOICE_SERVER_UPDATE the
//! fake sent) → Hello + Ready (SSRC, 127.0.0.1, the UDP port, the modes) + ClientsConnect;
//! SelectProtocol → SessionDescription with a fresh key and the DAVE protocol version the test
//! chose, then with DAVE the external sender (op 25) and the MLS exchange ([`super::dave`]);
//! heartbeat → ACK with the nonce; Resume → Hello + Resumed. Binary frames from the server
//! carry a sequence number only from v8 on, as Discord documents. UDP: IP discovery answers;
//! the bot's RTP decrypted (transport, then DAVE) and its Opus decoded; simulated users'
//! speech sent as RTP, DAVE-encrypted by their own MLS clients.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::audio::OpusStream;
use super::dave::DaveCall;
use super::rtp::{self, RtpCipher};
use super::{SayOptions, Shared, VoiceConn, World};

/// What a voice gateway connection sends.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A payload.
    Json(Value),
    /// A binary payload (DAVE opcodes 25, 27, 29, 30): opcode, then the body.
    Binary(Vec<u8>),
    /// Close with this code.
    Close(u16),
}

static GENERATIONS: AtomicU64 = AtomicU64::new(1);
static SSRCS: AtomicU32 = AtomicU32::new(1);

pub(crate) async fn serve(listener: TcpListener, tls: TlsAcceptor, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(connection(stream, tls.clone(), shared.clone()));
    }
}

fn op(op: u64, d: Value) -> Value {
    json!({"op": op, "d": d})
}

fn id_of(v: &Value) -> Option<u64> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64())
}

async fn connection(stream: TcpStream, tls: TlsAcceptor, shared: Arc<Shared>) {
    let Ok(tls_stream) = tls.accept(stream).await else {
        return;
    };
    let mut version = 4u32;
    // tungstenite's callback type fixes the error variant (an HTTP response).
    #[allow(clippy::result_large_err)]
    let callback = |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                    response| {
        version = gateway_version(request.uri().query());
        Ok(response)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(tls_stream, callback).await else {
        return;
    };
    shared.lock().voice_gateway_versions.push(version);
    let mut seq: u16 = 0;
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
    // (guild, user) once identified: the bot under test or another bot identity.
    let mut guild: Option<(u64, u64)> = None;
    loop {
        tokio::select! {
            incoming = source.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(b))) => {
                        handle_binary(&shared, &tx, guild, &b);
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let Ok(payload) = serde_json::from_str::<Value>(&text) else {
                    let _ = tx.send(Outgoing::Close(4002));
                    continue;
                };
                handle(&shared, generation, &tx, &mut guild, &payload);
            }
            out = rx.recv() => {
                let Some(out) = out else { break };
                match out {
                    Outgoing::Json(v) => {
                        if sink.send(Message::text(v.to_string())).await.is_err() {
                            break;
                        }
                    }
                    Outgoing::Binary(body) => {
                        // v8 puts the server's sequence number first; v4 does not.
                        let frame = if version >= 8 {
                            seq = seq.wrapping_add(1);
                            [&seq.to_be_bytes()[..], &body].concat()
                        } else {
                            body
                        };
                        if sink.send(Message::binary(frame)).await.is_err() {
                            break;
                        }
                    }
                    Outgoing::Close(code) => {
                        let frame = CloseFrame { code: CloseCode::from(code), reason: "fake".into() };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        let _ = sink.close().await;
                        break;
                    }
                }
            }
        }
    }
    if let Some((g, user)) = guild {
        let mut w = shared.lock();
        if let Some(conn) = w.conn_mut(g, user) {
            if conn.generation == generation {
                conn.connected = false;
            }
        }
        drop(w);
        shared.notify();
    }
}

/// The `v` query parameter of the voice gateway URL (Discord's default, 4, without one).
fn gateway_version(query: Option<&str>) -> u32 {
    query
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("v="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// The bot's binary frames: op 26 (key package) and op 28 (commit and welcome).
fn handle_binary(
    shared: &Shared,
    tx: &mpsc::UnboundedSender<Outgoing>,
    guild: Option<(u64, u64)>,
    frame: &[u8],
) {
    let Some((g, user)) = guild else { return };
    let mut w = shared.lock();
    if let Some(bot) = bot_call_with_peer(&mut w, g, user) {
        // Key packages only: the bot commits in the fake's groups, a peer's commit loses.
        if let Some((26, body)) = frame.split_first() {
            bot.dave.on_peer_key_package(user, body, &bot.tx);
        }
        drop(w);
        shared.notify();
        return;
    }
    let Some(conn) = w.conn_mut(g, user) else {
        return;
    };
    match frame.split_first() {
        Some((26, body)) => conn.dave.on_key_package(body, tx),
        Some((28, body)) => conn.dave.on_commit_welcome(body, tx),
        _ => {}
    }
    drop(w);
    shared.notify();
}

/// The bot under test's connection in `guild` when `user` is another real client attached to
/// its DAVE call.
fn bot_call_with_peer(w: &mut World, guild: u64, user: u64) -> Option<&mut VoiceConn> {
    if user == w.bot.id {
        return None;
    }
    w.voice
        .get_mut(&guild)
        .and_then(|s| s.conn.as_mut())
        .filter(|c| c.dave.has_peer(user))
}

/// The bot's DAVE JSON opcodes: 23 (ready for transition) and 31 (invalid commit/welcome).
fn handle_dave_json(
    shared: &Shared,
    tx: &mpsc::UnboundedSender<Outgoing>,
    guild: Option<(u64, u64)>,
    code: u64,
    d: &Value,
) {
    let Some((g, user)) = guild else { return };
    let tid = d["transition_id"]
        .as_u64()
        .and_then(|t| u16::try_from(t).ok())
        .unwrap_or(0);
    let mut w = shared.lock();
    if bot_call_with_peer(&mut w, g, user).is_some() {
        // A real client's readiness: the bot's op 23 runs the transition for all.
        return;
    }
    let Some(conn) = w.conn_mut(g, user) else {
        return;
    };
    if code == 23 {
        conn.dave.on_ready(tid, tx);
    } else {
        conn.dave.on_invalid(tid, tx);
    }
    drop(w);
    shared.notify();
}

/// Identify: checked against the VOICE_SERVER_UPDATE the fake sent to that bot identity; a
/// new connection (SSRC, key, DAVE call), then Hello, Ready and ClientsConnect.
fn identify(
    shared: &Shared,
    generation: u64,
    tx: &mpsc::UnboundedSender<Outgoing>,
    guild: &mut Option<(u64, u64)>,
    d: &Value,
) {
    let mut w = shared.lock();
    let server = id_of(&d["server_id"]).unwrap_or(0);
    let user = id_of(&d["user_id"]).unwrap_or(0);
    let peer = user != w.bot.id;
    let udp_port = w.udp_port;
    let channel = w.slot_mut(server, user).and_then(|s| s.channel);
    let users = users_in(&w, server, channel, user);
    // Simulated users only: other bot identities are real clients with their own connection.
    let identities = w.identities();
    let dave = DaveCall::new(
        user,
        channel.unwrap_or(0),
        w.dave_version,
        users.iter().copied().filter(|u| !identities.contains(u)),
        w.dave_undecryptable.clone(),
    );
    let Some(slot) = w.slot_mut(server, user) else {
        let _ = tx.send(Outgoing::Close(4004));
        return;
    };
    if d["session_id"].as_str() != Some(slot.session_id.as_str())
        || d["token"].as_str() != Some(slot.token.as_str())
    {
        let _ = tx.send(Outgoing::Close(4004));
        return;
    }
    let ssrc = SSRCS.fetch_add(1, Ordering::Relaxed);
    let mut key = [0u8; 32];
    key.iter_mut().for_each(|b| *b = fastrand::u8(..));
    if let Some(old) = slot.conn.take() {
        let _ = old.tx.send(Outgoing::Close(4006));
    }
    slot.conn = Some(VoiceConn {
        generation,
        tx: tx.clone(),
        ssrc,
        key,
        cipher: Arc::new(RtpCipher::new(&key)),
        bot_udp: None,
        described: false,
        connected: true,
        counter: Arc::new(AtomicU32::new(fastrand::u32(..))),
        decoder: OpusStream::new(),
        dave,
    });
    *guild = Some((server, user));
    if peer {
        w.ssrc_peer.insert(ssrc, (server, user));
    } else {
        w.ssrc_guild.insert(ssrc, server);
        *w.voice_identifies.entry(server).or_default() += 1;
    }
    let users: Vec<String> = users.iter().map(u64::to_string).collect();
    let _ = tx.send(Outgoing::Json(op(
        8,
        json!({"heartbeat_interval": 13_750.0}),
    )));
    let _ = tx.send(Outgoing::Json(op(
        2,
        json!({
            "ssrc": ssrc,
            "ip": "127.0.0.1",
            "port": udp_port,
            "modes": [rtp::MODE, "aead_xchacha20_poly1305_rtpsize"],
            "heartbeat_interval": 13_750,
        }),
    )));
    if !users.is_empty() {
        let _ = tx.send(Outgoing::Json(op(11, json!({"user_ids": users}))));
    }
    drop(w);
    shared.notify();
}

fn handle(
    shared: &Shared,
    generation: u64,
    tx: &mpsc::UnboundedSender<Outgoing>,
    guild: &mut Option<(u64, u64)>,
    p: &Value,
) {
    let d = &p["d"];
    match p["op"].as_u64() {
        Some(0) => identify(shared, generation, tx, guild, d),
        // Select protocol.
        Some(1) => {
            let mut w = shared.lock();
            let Some((g, user)) = *guild else { return };
            let Some(conn) = w.conn_mut(g, user) else {
                return;
            };
            let data = &d["data"];
            let mode = data["mode"].as_str().unwrap_or_default();
            if mode != rtp::MODE {
                // Unknown encryption mode (the fake only implements AES-GCM).
                let _ = tx.send(Outgoing::Close(4016));
                return;
            }
            let address = data["address"]
                .as_str()
                .and_then(|a| a.parse::<IpAddr>().ok());
            let port = data["port"].as_u64().and_then(|p| u16::try_from(p).ok());
            if let (Some(address), Some(port)) = (address, port) {
                conn.bot_udp = Some(SocketAddr::new(address, port));
            }
            conn.described = true;
            let key = conn.key;
            let version = conn.dave.version();
            let _ = tx.send(Outgoing::Json(op(
                4,
                json!({
                    "mode": rtp::MODE,
                    "secret_key": key.to_vec(),
                    "dave_protocol_version": version,
                    "audio_codec": "opus",
                    "video_codec": null,
                    "media_session_id": super::random_hex(8),
                }),
            )));
            describe_dave(&mut w, g, user, tx);
            drop(w);
            shared.notify();
        }
        // Heartbeat: ACK with the nonce.
        Some(3) => {
            let _ = tx.send(Outgoing::Json(op(6, d.clone())));
        }
        // The bot's Speaking.
        Some(5) => {
            let mut w = shared.lock();
            if let Some((g, user)) = *guild {
                if user == w.bot.id {
                    w.bot_speaking.entry(g).or_default().push(d.clone());
                }
            }
        }
        // DAVE: ready for transition, invalid commit or welcome.
        Some(code @ (23 | 31)) => handle_dave_json(shared, tx, *guild, code, d),
        // Resume.
        Some(7) => {
            let mut w = shared.lock();
            let server = id_of(&d["server_id"]).unwrap_or(0);
            let user = id_of(&d["user_id"]).unwrap_or(w.bot.id);
            let ok = w.slot_mut(server, user).is_some_and(|s| {
                d["session_id"].as_str() == Some(s.session_id.as_str())
                    && d["token"].as_str() == Some(s.token.as_str())
                    && s.conn.is_some()
            });
            if !ok {
                // Session no longer valid.
                let _ = tx.send(Outgoing::Close(4006));
                return;
            }
            let conn = w.conn_mut(server, user).expect("checked above");
            conn.generation = generation;
            conn.tx = tx.clone();
            conn.connected = true;
            *guild = Some((server, user));
            *w.voice_resumes.entry(server).or_default() += 1;
            let _ = tx.send(Outgoing::Json(op(
                8,
                json!({"heartbeat_interval": 13_750.0}),
            )));
            let _ = tx.send(Outgoing::Json(op(9, Value::Null)));
            drop(w);
            shared.notify();
        }
        _ => {}
    }
}

/// DAVE after SessionDescription: another real client in the bot under test's channel joins
/// the bot's call (one group, one external sender); anyone else runs its own call.
fn describe_dave(w: &mut World, guild: u64, user: u64, tx: &mpsc::UnboundedSender<Outgoing>) {
    let bot_id = w.bot.id;
    let same_channel = user != bot_id
        && w.voice_channel_of(guild, user).is_some()
        && w.voice_channel_of(guild, user) == w.bot_channel(guild);
    if same_channel {
        if let Some(bot) = w.voice.get_mut(&guild).and_then(|s| s.conn.as_mut()) {
            if bot.dave.version() != 0 {
                bot.dave.attach_peer(user, tx);
                return;
            }
        }
    }
    if let Some(conn) = w.conn_mut(guild, user) {
        conn.dave.described(tx);
    }
}

/// What the network does to the next packet: `None` loses it, otherwise its delay.
fn network_delay(shared: &Shared) -> Option<Duration> {
    let mut w = shared.lock();
    let (conditions, rng) = &mut w.network;
    if conditions.loss > 0.0 && rng.f64() < conditions.loss {
        w.packets_lost += 1;
        return None;
    }
    let mut delay = u64::from(rng.u32(0..=conditions.jitter_ms));
    if conditions.reorder > 0.0 && rng.f64() < conditions.reorder {
        delay += 30;
    }
    Some(Duration::from_millis(delay))
}

/// The users other than `me` (the connecting bot) in `channel` of `guild`.
fn users_in(w: &World, guild: u64, channel: Option<u64>, bot_id: u64) -> Vec<u64> {
    w.guilds
        .get(&guild)
        .map(|g| {
            g.voice_states
                .iter()
                .filter(|(u, (c, _))| Some(*c) == channel && **u != bot_id)
                .map(|(u, _)| *u)
                .collect()
        })
        .unwrap_or_default()
}

/// Receives the bots' UDP: IP discovery requests and RTP. The bot under test's audio is
/// decrypted and decoded ([`super::BotAudio`]); every real client's RTP is relayed to the
/// other real clients in its channel ([`relay`]).
pub(crate) async fn udp_loop(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let packet = &buf[..n];
        if let Some(ssrc) = rtp::discovery_request(packet) {
            let reply = rtp::discovery_response(ssrc, &from.ip().to_string(), from.port());
            let _ = socket.send_to(&reply, from).await;
            continue;
        }
        if n < 12 || packet[0] >> 6 != 2 || packet[1] & 0x7F != rtp::OPUS_PAYLOAD_TYPE {
            // Keepalives and RTCP.
            continue;
        }
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let sends = receive_rtp(&mut shared.lock(), ssrc, packet);
        shared.notify();
        for (addr, packet) in sends {
            let _ = socket.send_to(&packet, addr).await;
        }
    }
}

/// One RTP packet from SSRC `ssrc`: recorded when the bot under test sent it, relayed in all
/// cases; what to send where.
fn receive_rtp(w: &mut World, ssrc: u32, packet: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
    if let Some(&(guild, user)) = w.ssrc_peer.get(&ssrc) {
        let opened = w.conn_mut(guild, user).and_then(|c| c.cipher.open(packet));
        opened
            .map(|o| relay(w, guild, user, &o))
            .unwrap_or_default()
    } else if let Some(&guild) = w.ssrc_guild.get(&ssrc) {
        let bot_id = w.bot.id;
        record_bot_packet(w, guild, packet)
            .map(|o| relay(w, guild, bot_id, &o))
            .unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// The bot under test's packet in `guild`: decrypted (transport, then DAVE), decoded and
/// recorded in [`super::BotAudio`]; the transport-decrypted packet, for the relay.
fn record_bot_packet(w: &mut World, guild: u64, packet: &[u8]) -> Option<rtp::Opened> {
    let decode = w.decode_bot_audio;
    let conn = w.voice.get_mut(&guild).and_then(|s| s.conn.as_mut())?;
    let opened = conn.cipher.open(packet);
    let mut decoded_ok = opened.is_some();
    let before = conn.decoder.pcm().len();
    if let Some(o) = &opened {
        // DAVE frames are decrypted as a member would; others are Opus as they are.
        let opus = match conn.dave.open_bot_frame(&o.payload) {
            Ok(Some(frame)) => Some(frame),
            Ok(None) => Some(o.payload.clone()),
            Err(()) => None,
        };
        decoded_ok = match (opus, decode) {
            (Some(opus), true) => conn.decoder.push(&opus),
            (opus, false) => opus.is_some(),
            (None, true) => false,
        };
    }
    let new_pcm = conn.decoder.pcm()[before..].to_vec();
    let audio = w.bot_audio.entry(guild).or_default();
    audio.packets += 1;
    if !decoded_ok {
        audio.bad_packets += 1;
    }
    audio.pcm.extend_from_slice(&new_pcm);
    let now = Instant::now();
    audio.first.get_or_insert(now);
    audio.last = Some(now);
    opened
}

/// Discord's SFU: `from`'s packet (transport-decrypted; its payload still DAVE-encrypted when
/// DAVE is on, as the SFU cannot read it) forwarded to every other real client in the same
/// channel of `guild`, each under its own transport key and counter, from the SSRC that
/// client knows `from` by, announced first with Speaking (op 5, once per connection).
/// Returns the packets to send and where.
fn relay(w: &mut World, guild: u64, from: u64, o: &rtp::Opened) -> Vec<(SocketAddr, Vec<u8>)> {
    let Some(channel) = w.voice_channel_of(guild, from) else {
        return Vec::new();
    };
    let targets: Vec<u64> = w
        .identities()
        .into_iter()
        .filter(|u| *u != from && w.voice_channel_of(guild, *u) == Some(channel))
        .collect();
    let next = 10_000 + w.user_ssrc.len() as u32;
    let ssrc = *w.user_ssrc.entry((guild, from)).or_insert(next);
    let mut out = Vec::new();
    for user in targets {
        let Some(conn) = w.conn_mut(guild, user) else {
            continue;
        };
        let Some(addr) = conn.bot_udp.filter(|_| conn.described && conn.connected) else {
            continue;
        };
        let counter = conn.counter.fetch_add(1, Ordering::Relaxed);
        let packet = conn
            .cipher
            .seal(o.sequence, o.timestamp, ssrc, counter, &o.payload);
        let (generation, tx) = (conn.generation, conn.tx.clone());
        if w.relay_announced.insert((generation, from)) {
            let _ = tx.send(Outgoing::Json(op(
                5,
                json!({"user_id": from.to_string(), "ssrc": ssrc, "speaking": 1, "delay": 0}),
            )));
        }
        out.push((addr, packet));
    }
    *w.relayed_packets.entry((guild, from)).or_default() += out.len();
    if DaveCall::is_dave_frame(&o.payload) {
        *w.relayed_dave_frames.entry((guild, from)).or_default() += out.len();
    }
    out
}

/// One simulated user's utterance: RTP every 20 ms from the user's SSRC to the bot.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn speak(
    shared: Arc<Shared>,
    socket: Arc<UdpSocket>,
    guild: u64,
    user: u64,
    ssrc: u32,
    frames: Arc<Vec<Vec<u8>>>,
    options: SayOptions,
    repeat: usize,
) {
    let speaking = json!({"op": 5, "d": {
        "user_id": user.to_string(), "ssrc": ssrc, "speaking": 1, "delay": 0,
    }});
    let send_speaking = |shared: &Shared| {
        let w = shared.lock();
        if let Some(conn) = w.voice.get(&guild).and_then(|s| s.conn.as_ref()) {
            let _ = conn.tx.send(Outgoing::Json(speaking.clone()));
        }
    };
    if !options.no_speaking && options.speaking_after_packets.is_none() {
        send_speaking(&shared);
        // Discord sends Speaking ahead of the audio.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One RTP stream per user, as a real client keeps it: the sequence goes on from the last
    // utterance and the timestamp advances with the time that passed.
    let (mut sequence, mut timestamp) = {
        let w = shared.lock();
        match w.user_streams.get(&(guild, user)) {
            Some(&(seq, ts, ended)) => {
                let gap = u32::try_from(ended.elapsed().as_millis() * 48).unwrap_or(u32::MAX);
                (seq, ts.wrapping_add(gap))
            }
            None => (fastrand::u16(..), fastrand::u32(..)),
        }
    };
    let silence: Vec<Vec<u8>> = vec![rtp::OPUS_SILENCE.to_vec(); 5];
    let gap = Duration::from_millis(u64::from(options.gap_ms));
    let mut next = tokio::time::Instant::now();
    let mut sent = 0usize;
    for round in 0..repeat {
        if round > 0 && !gap.is_zero() {
            // A pause: nothing is sent, the RTP clock goes on.
            next += gap;
            timestamp = timestamp.wrapping_add(u32::try_from(gap.as_millis() * 48).unwrap_or(0));
        }
        let last = round + 1 == repeat;
        let trailer: &[Vec<u8>] = if last || !gap.is_zero() {
            &silence
        } else {
            &[]
        };
        for frame in frames.iter().chain(trailer.iter()) {
            tokio::time::sleep_until(next).await;
            next += Duration::from_millis(20);
            if options.speaking_after_packets == Some(sent) && !options.no_speaking {
                send_speaking(&shared);
            }
            sent += 1;
            let target = {
                let mut w = shared.lock();
                w.voice
                    .get_mut(&guild)
                    .and_then(|s| s.conn.as_mut())
                    .and_then(|c| {
                        let addr = c.bot_udp?;
                        // The user's client DAVE-encrypts before the transport does.
                        let payload = c.dave.seal_user_frame(user, frame);
                        Some((
                            addr,
                            c.cipher.clone(),
                            c.counter.fetch_add(1, Ordering::Relaxed),
                            payload,
                        ))
                    })
            };
            if let Some((addr, cipher, counter, payload)) = target {
                let packet = cipher.seal(sequence, timestamp, ssrc, counter, &payload);
                match network_delay(&shared) {
                    None => {}
                    Some(Duration::ZERO) => {
                        let _ = socket.send_to(&packet, addr).await;
                    }
                    Some(delay) => {
                        let socket = socket.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = socket.send_to(&packet, addr).await;
                        });
                    }
                }
            }
            sequence = sequence.wrapping_add(1);
            timestamp = timestamp.wrapping_add(960);
        }
    }
    let mut w = shared.lock();
    w.user_streams
        .insert((guild, user), (sequence, timestamp, Instant::now()));
    *w.utterances_sent.entry(guild).or_default() += 1;
    drop(w);
    shared.notify();
}
