//! A fake Discord on `127.0.0.1`, faithful enough that the real bot (serenity and songbird,
//! unmodified) runs against it: REST, the gateway websocket, the voice gateway over TLS, and
//! voice over UDP.
//!
//! - **REST** (`rest.rs`, reached through serenity's HTTP proxy setting, which rewrites
//!   `https://discord.com` to [`FakeDiscord::api_base_url`]): `GET /gateway`,
//!   `GET /gateway/bot`, `GET /users/@me`, `GET /oauth2/applications/@me`, application
//!   command `PUT`/`POST` (global and per guild), interaction callbacks, `@original` edits,
//!   follow-ups, channel messages and `GET /guilds/{id}/members/{user}`. A wrong
//!   `Authorization: Bot …` gets Discord's 401.
//! - **Gateway** (`gateway.rs`, plain `ws://`): Hello, Identify (token, intents and shard
//!   checked), READY, GUILD_CREATE with channels, roles, members and voice states for the
//!   shard's guilds, heartbeats and ACKs, Resume, VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE
//!   in answer to op 4, VOICE_STATE_UPDATE when simulated users move, INTERACTION_CREATE for
//!   the slash commands.
//! - **Voice gateway** (`voice.rs`, `wss://localhost:<port>` with a certificate from
//!   [`tls::TestCa`], trusted by the bot through `SSL_CERT_FILE`): Identify, Hello, Ready
//!   (SSRC, IP, port, modes), heartbeat ACKs, SelectProtocol → SessionDescription (mode
//!   `aead_aes256_gcm_rtpsize`, a fresh secret key, the DAVE protocol version the test chose:
//!   [`FakeDiscord::set_dave_version`]), Speaking for simulated users, ClientsConnect,
//!   ClientDisconnect, Resume/Resumed, and dropped connections on request. songbird 0.6.1
//!   connects with `?v=4`; the fake answers at the version asked for (binary frames carry a
//!   sequence number from v8 on only).
//! - **DAVE** (`dave.rs`): with version 1, the server's part of Discord's end-to-end
//!   encryption (opcodes 21-31: external sender, key packages, proposals, commit and welcome,
//!   transitions, downgrade and upgrade), each simulated user a real MLS member (songbird's
//!   own `davey` client) that DAVE-encrypts its Opus and decrypts the bot's.
//! - **UDP** (`voice.rs`): IP discovery; RTP with `aead_aes256_gcm_rtpsize` ([`rtp`]) both
//!   ways. Simulated users send Opus-encoded speech ([`audio`]); what the bot sends is
//!   decrypted and decoded per guild ([`BotAudio`]).
//!
//! **DAVE is off by default** (`dave_protocol_version: 0`, transport encryption only), which
//! is how most tests run and how the non-DAVE path stays tested; `tests/tests/discord_dave.rs`
//! turns it on. Under DAVE, songbird drops every encrypted packet from an SSRC it cannot map to
//! a user yet (it needs the user to decrypt), so the bot's replay of a late speaker's first
//! frames only ever happens without DAVE; with DAVE those frames are lost, and the fake's
//! late-Speaking option shows it.
//!
//! **Several bot identities** ([`FakeDiscord::add_bot`]): each token authenticates its own bot
//! user (gateway Identify, REST `Authorization: Bot …`), with its own gateway session, voice
//! state per (guild, user) and voice connection. Voice states reach every bot in the guild;
//! VOICE_SERVER_UPDATE and interactions only the bot concerned (interactions: the bot under
//! test). RTP a real client sends is relayed to the other real clients in its channel, as
//! Discord's SFU does: each receiver gets it under its own transport key and counter, from the
//! SSRC it knows the sender by, announced with Speaking first; DAVE frames pass through
//! unread. Under DAVE, another bot in the bot under test's channel joins that call's group
//! (the same external sender; see [`dave`]).
//!
//! The fake runs on its own tokio runtime; tests drive it from plain `#[test]` functions.

pub mod audio;
pub mod dave;
pub mod model;
pub mod rtp;
pub mod tls;

mod commands;
mod gateway;
mod rest;
mod voice;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::fake_cloud::FakeServer;
use model::{ChannelSpec, RoleSpec, UserSpec};

/// The application (client) id.
pub const APPLICATION_ID: u64 = 1_300_000_000_000_000_001;
/// The bot's user id.
pub const BOT_ID: u64 = 1_300_000_000_000_000_002;
/// The test server.
pub const GUILD_ID: u64 = 1_300_000_000_000_000_100;
/// Its `#general` text channel, where commands are typed.
pub const GENERAL: u64 = 1_300_000_000_000_000_101;
/// Its `Lounge` voice channel.
pub const LOUNGE: u64 = 1_300_000_000_000_000_102;
/// A voice channel where the bot is denied Connect.
pub const LOCKED: u64 = 1_300_000_000_000_000_103;
/// A text channel for transcripts.
pub const TRANSCRIPTS: u64 = 1_300_000_000_000_000_104;
/// A stage channel (`Town Hall`).
pub const STAGE: u64 = 1_300_000_000_000_000_105;
/// Another voice channel (`Studio`).
pub const STUDIO: u64 = 1_300_000_000_000_000_106;
/// The `DJ` role.
pub const DJ_ROLE: u64 = 1_300_000_000_000_000_110;
/// Alice (role DJ).
pub const ALICE: u64 = 1_300_000_000_000_000_201;
/// Bob.
pub const BOB: u64 = 1_300_000_000_000_000_202;
/// Carol.
pub const CAROL: u64 = 1_300_000_000_000_000_203;
/// Another bot in the server (a music bot).
pub const JUKEBOX: u64 = 1_300_000_000_000_000_204;
/// The id of the registered `/voice` command the interactions name.
pub const COMMAND_ID: u64 = 1_300_000_000_000_000_300;

/// How long waits poll at most between checks.
const POLL: Duration = Duration::from_millis(50);

/// One guild of the fake world.
#[derive(Debug, Clone)]
pub struct GuildSpec {
    /// Snowflake.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Roles, `@everyone` (id = guild id) first.
    pub roles: Vec<RoleSpec>,
    /// Channels.
    pub channels: Vec<ChannelSpec>,
    /// Members by user id.
    pub members: BTreeMap<u64, UserSpec>,
    /// Who is in which voice channel (the bot included), with their voice session id.
    pub voice_states: BTreeMap<u64, (u64, String)>,
}

/// One interaction the fake sent, and what the bot answered.
#[derive(Debug, Clone)]
pub struct InteractionRecord {
    /// Interaction id.
    pub id: u64,
    /// Its token (in the webhook URLs).
    pub token: String,
    /// Guild.
    pub guild: u64,
    /// Who used the command.
    pub user: u64,
    /// The subcommand.
    pub subcommand: String,
    /// Callback bodies (`POST /interactions/{id}/{token}/callback`), in order.
    pub callbacks: Vec<Value>,
    /// `@original` edit bodies, in order.
    pub edits: Vec<Value>,
    /// Follow-up bodies, in order.
    pub followups: Vec<Value>,
    /// When it was sent.
    pub sent: Instant,
}

/// The bot's visible answer to an interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct InteractionReply {
    /// The text shown.
    pub content: String,
    /// Whether only the user sees it.
    pub ephemeral: bool,
    /// Whether the bot deferred first (a "thinking…" reply, then the edit).
    pub deferred: bool,
}

impl InteractionRecord {
    /// The answer as the user sees it, once there is text.
    pub fn reply(&self) -> Option<InteractionReply> {
        let first = self.callbacks.first()?;
        let kind = first["type"].as_u64()?;
        let flags = first["data"]["flags"].as_u64().unwrap_or(0);
        let ephemeral = flags & 64 != 0;
        let followup = || {
            self.followups
                .last()
                .and_then(|f| f["content"].as_str())
                .map(str::to_string)
        };
        match kind {
            4 => first["data"]["content"].as_str().map(|c| InteractionReply {
                content: c.to_string(),
                ephemeral,
                deferred: false,
            }),
            5 => self
                .edits
                .last()
                .and_then(|e| e["content"].as_str())
                .map(str::to_string)
                .or_else(followup)
                .map(|content| InteractionReply {
                    content,
                    ephemeral,
                    deferred: true,
                }),
            _ => None,
        }
    }
}

/// What the bot sent on one guild's voice connection(s), decrypted and decoded.
#[derive(Debug, Clone, Default)]
pub struct BotAudio {
    /// RTP packets received from the bot's SSRC.
    pub packets: usize,
    /// Packets that did not decrypt or decode.
    pub bad_packets: usize,
    /// Decoded audio, 48 kHz mono.
    pub pcm: Vec<i16>,
    /// When the first packet came.
    pub first: Option<Instant>,
    /// When the last packet came.
    pub last: Option<Instant>,
}

impl BotAudio {
    /// Seconds of audio whose 20 ms frames are louder than -40 dBFS.
    pub fn voiced_seconds(&self) -> f64 {
        let frames = self
            .pcm
            .chunks(audio::FRAME)
            .filter(|f| audio::rms(f) > 0.01)
            .count();
        frames as f64 * 0.02
    }
}

/// One gateway connection the bot made.
#[derive(Debug, Clone)]
pub struct ShardConn {
    pub(crate) conn_id: u64,
    /// The bot identity that identified on it (the bot under test or a [`FakeDiscord::add_bot`]).
    pub(crate) user: u64,
    pub(crate) shard: [u32; 2],
    pub(crate) tx: UnboundedSender<gateway::Outgoing>,
}

impl ShardConn {
    /// The shard it runs: `[id, total]`, as identified.
    pub fn shard(&self) -> [u32; 2] {
        self.shard
    }
}

/// A voice connection (one per guild, kept across resumes).
pub(crate) struct VoiceConn {
    pub(crate) generation: u64,
    pub(crate) tx: UnboundedSender<voice::Outgoing>,
    pub(crate) ssrc: u32,
    pub(crate) key: [u8; 32],
    pub(crate) cipher: Arc<rtp::RtpCipher>,
    pub(crate) bot_udp: Option<SocketAddr>,
    pub(crate) described: bool,
    pub(crate) connected: bool,
    pub(crate) counter: Arc<AtomicU32>,
    pub(crate) decoder: audio::OpusStream,
    /// DAVE on this connection (protocol 0: none).
    pub(crate) dave: dave::DaveCall,
}

/// The bot's voice slot in a guild: what op 4 asked for and the connection.
#[derive(Default)]
pub(crate) struct VoiceSlot {
    pub(crate) channel: Option<u64>,
    pub(crate) session_id: String,
    pub(crate) token: String,
    pub(crate) conn: Option<VoiceConn>,
}

/// Everything the fake knows, and records.
pub struct World {
    pub(crate) token: String,
    pub(crate) bot: UserSpec,
    pub(crate) owner: UserSpec,
    pub(crate) guilds: BTreeMap<u64, GuildSpec>,
    pub(crate) gateway_url: String,
    pub(crate) voice_endpoint: String,
    pub(crate) udp_port: u16,
    pub(crate) next_id: u64,
    /// The gateway connections that identified (or resumed), one per shard.
    pub shards: Vec<ShardConn>,
    pub(crate) voice: HashMap<u64, VoiceSlot>,
    pub(crate) ssrc_guild: HashMap<u32, u64>,
    /// Other bot identities ([`FakeDiscord::add_bot`]): user id → (token, user).
    pub(crate) peers: BTreeMap<u64, (String, UserSpec)>,
    /// Their voice slots, per (guild, user).
    pub(crate) peer_voice: HashMap<(u64, u64), VoiceSlot>,
    /// Their connections' SSRCs: SSRC → (guild, user).
    pub(crate) ssrc_peer: HashMap<u32, (u64, u64)>,
    /// (voice connection generation, user) pairs whose relayed stream was announced (op 5).
    pub(crate) relay_announced: std::collections::HashSet<(u64, u64)>,
    /// DAVE on the bot's voice connection in each guild as it stood when the connection ended
    /// (the bot left voice).
    pub dave_ended: HashMap<u64, dave::DaveStatus>,
    /// RTP packets relayed between real clients (the SFU's forwarding), per (guild, sender),
    /// counted once per receiver.
    pub relayed_packets: HashMap<(u64, u64), usize>,
    /// Of those, the DAVE-encrypted ones (the frame ends with DAVE's marker).
    pub relayed_dave_frames: HashMap<(u64, u64), usize>,
    pub(crate) user_ssrc: HashMap<(u64, u64), u32>,
    /// Each user's RTP stream: next sequence number, next timestamp, when it last sent.
    pub(crate) user_streams: HashMap<(u64, u64), (u16, u32, Instant)>,
    pub(crate) decode_bot_audio: bool,
    /// The DAVE protocol version SessionDescription offers (0 or 1).
    pub(crate) dave_version: u16,
    /// Users whose DAVE frames nobody can decrypt (never added to the MLS group).
    pub(crate) dave_undecryptable: std::collections::BTreeSet<u64>,
    /// The `v` each voice gateway connection asked for.
    pub voice_gateway_versions: Vec<u32>,
    /// Loss, jitter and reordering of the simulated users' RTP, with its random source.
    pub(crate) network: (NetworkConditions, fastrand::Rng),
    /// Simulated users' packets dropped by [`NetworkConditions::loss`].
    pub packets_lost: usize,
    /// Identify payloads received (token removed).
    pub identifies: Vec<Value>,
    /// Op 4 payloads the bot sent.
    pub voice_state_updates: Vec<Value>,
    /// Commands registered: (guild or global, the body).
    pub registered: Vec<(Option<u64>, Value)>,
    /// Interactions sent, by id.
    pub interactions: BTreeMap<u64, InteractionRecord>,
    /// Messages posted: (channel, content).
    pub messages: Vec<(u64, String)>,
    /// Requests to routes the fake does not know: (method, path).
    pub unknown_requests: Vec<(String, String)>,
    /// Gateway resumes (op 6 accepted).
    pub gateway_resumes: u32,
    /// Voice gateway resumes, per guild.
    pub voice_resumes: HashMap<u64, u32>,
    /// Voice gateway identifies, per guild.
    pub voice_identifies: HashMap<u64, u32>,
    /// Decoded bot audio per guild.
    pub bot_audio: HashMap<u64, BotAudio>,
    /// Speaking payloads (op 5) the bot sent, per guild.
    pub bot_speaking: HashMap<u64, Vec<Value>>,
    /// Simulated utterances finished sending, per guild.
    pub utterances_sent: HashMap<u64, usize>,
}

impl World {
    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// `user`'s (a bot identity's) shard connection serving `guild`.
    pub(crate) fn shard_of(&self, user: u64, guild: u64) -> Option<&ShardConn> {
        self.shards.iter().rev().find(|s| {
            s.user == user && ((guild >> 22) % u64::from(s.shard[1].max(1))) as u32 == s.shard[0]
        })
    }

    /// Sends a dispatch to the bot under test's shard serving `guild`; false when none is
    /// connected.
    pub(crate) fn dispatch(&self, guild: u64, event: &str, data: Value) -> bool {
        self.dispatch_to(self.bot.id, guild, event, data)
    }

    /// Sends a dispatch to `user`'s shard serving `guild`; false when none is connected.
    pub(crate) fn dispatch_to(&self, user: u64, guild: u64, event: &str, data: Value) -> bool {
        match self.shard_of(user, guild) {
            Some(s) => {
                s.tx.send(gateway::Outgoing::Dispatch(event.to_string(), data))
                    .is_ok()
            }
            None => false,
        }
    }

    /// Sends a guild-wide dispatch (a voice state) to every bot identity in the guild.
    pub(crate) fn dispatch_all(&self, guild: u64, event: &str, data: &Value) {
        for user in self.identities() {
            self.dispatch_to(user, guild, event, data.clone());
        }
    }

    /// Every bot identity: the bot under test first, then [`FakeDiscord::add_bot`]'s.
    pub(crate) fn identities(&self) -> Vec<u64> {
        std::iter::once(self.bot.id)
            .chain(self.peers.keys().copied())
            .collect()
    }

    /// The bot identity a token (`Bot ` prefix or not) authenticates, if any.
    pub(crate) fn identity_of_token(&self, token: &str) -> Option<&UserSpec> {
        let token = token.trim_start_matches("Bot ");
        if token == self.token {
            return Some(&self.bot);
        }
        self.peers
            .values()
            .find(|(t, _)| t == token)
            .map(|(_, u)| u)
    }

    /// `user`'s voice slot in `guild` (the bot under test's or another bot identity's).
    pub(crate) fn slot_mut(&mut self, guild: u64, user: u64) -> Option<&mut VoiceSlot> {
        if user == self.bot.id {
            self.voice.get_mut(&guild)
        } else {
            self.peer_voice.get_mut(&(guild, user))
        }
    }

    /// `user`'s voice connection in `guild`.
    pub(crate) fn conn_mut(&mut self, guild: u64, user: u64) -> Option<&mut VoiceConn> {
        self.slot_mut(guild, user).and_then(|s| s.conn.as_mut())
    }

    /// Voice channel of `user` in `guild`.
    pub fn voice_channel_of(&self, guild: u64, user: u64) -> Option<u64> {
        self.guilds
            .get(&guild)?
            .voice_states
            .get(&user)
            .map(|(c, _)| *c)
    }

    /// DAVE on the bot's voice connection in `guild`, as the fake sees it.
    pub fn dave_status(&self, guild: u64) -> Option<dave::DaveStatus> {
        Some(self.voice.get(&guild)?.conn.as_ref()?.dave.status())
    }

    /// Whether the bot's voice connection in `guild` is up (session described).
    pub fn bot_connected(&self, guild: u64) -> bool {
        self.voice
            .get(&guild)
            .and_then(|s| s.conn.as_ref())
            .is_some_and(|c| c.connected && c.described && c.bot_udp.is_some())
    }

    /// The SSRC the fake gave the bot's current voice connection in `guild`.
    pub fn bot_ssrc(&self, guild: u64) -> Option<u32> {
        self.voice.get(&guild)?.conn.as_ref().map(|c| c.ssrc)
    }

    /// The channel the bot asked to be in (op 4), if any.
    pub fn bot_channel(&self, guild: u64) -> Option<u64> {
        self.voice.get(&guild).and_then(|s| s.channel)
    }

    /// The messages posted in `channel`.
    pub fn messages_in(&self, channel: u64) -> Vec<String> {
        self.messages
            .iter()
            .filter(|(c, _)| *c == channel)
            .map(|(_, m)| m.clone())
            .collect()
    }

    pub(crate) fn member_json(&self, guild: u64, user: u64) -> Option<Value> {
        let g = self.guilds.get(&guild)?;
        let u = g.members.get(&user)?;
        Some(model::member(guild, u, None))
    }
}

pub(crate) struct Shared {
    world: Mutex<World>,
    changed: Condvar,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes waiters after a change.
    pub(crate) fn notify(&self) {
        self.changed.notify_all();
    }
}

/// The network between the simulated users and the bot: what their RTP suffers on the way.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetworkConditions {
    /// Share of packets lost (0 to 1).
    pub loss: f64,
    /// Each packet is delayed by a uniform 0..=`jitter_ms`.
    pub jitter_ms: u32,
    /// Share of packets held back 30 ms more, so they arrive after the next one (0 to 1).
    pub reorder: f64,
    /// Seed of the random choices, so a run can be repeated.
    pub seed: u64,
}

/// Options for a simulated utterance.
#[derive(Debug, Clone, Copy, Default)]
pub struct SayOptions {
    /// Send the Speaking event only after this many packets (a speaker who "appears late",
    /// as when Discord's Speaking event comes after the audio or not at all).
    pub speaking_after_packets: Option<usize>,
    /// Never send Speaking.
    pub no_speaking: bool,
    /// With repeats: a pause between them, in ms (nothing sent, as a client that stopped
    /// talking), each repeat ending with the five silence frames. 0: back to back.
    pub gap_ms: u32,
}

/// The fake Discord. Dropping it stops everything.
pub struct FakeDiscord {
    shared: Arc<Shared>,
    rest: FakeServer,
    ca: tls::TestCa,
    udp: Arc<tokio::net::UdpSocket>,
    runtime: Option<tokio::runtime::Runtime>,
}

fn user(
    id: u64,
    username: &str,
    global_name: Option<&str>,
    bot: bool,
    roles: Vec<u64>,
) -> UserSpec {
    UserSpec {
        id,
        username: username.to_string(),
        global_name: global_name.map(str::to_string),
        nick: None,
        bot,
        roles,
    }
}

/// A random hex string of `n` bytes.
pub(crate) fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect()
}

impl FakeDiscord {
    /// Starts the fake with the test server: `#general`, `Lounge` (voice), `Locked` (voice,
    /// the bot is denied Connect), `#transcripts`; Alice (DJ), Bob, Carol and the Jukebox bot.
    pub fn start() -> FakeDiscord {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-discord")
            .enable_all()
            .build()
            .expect("the fake Discord's runtime");
        let ca = tls::TestCa::new();
        let (gateway_listener, voice_listener, udp) = runtime.block_on(async {
            let g = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the gateway port");
            let v = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the voice gateway port");
            let u = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind the voice UDP port");
            (g, v, u)
        });
        let gateway_addr = gateway_listener.local_addr().expect("gateway address");
        let voice_addr = voice_listener.local_addr().expect("voice address");
        let udp = Arc::new(udp);
        let udp_port = udp.local_addr().expect("UDP address").port();

        let bot = user(BOT_ID, "OpenClaw", Some("OpenClaw Voice"), true, vec![]);
        let owner = user(ALICE, "alice", Some("Alice"), false, vec![DJ_ROLE]);
        let mut guilds = BTreeMap::new();
        guilds.insert(GUILD_ID, Self::test_guild(&bot));
        let world = World {
            token: format!("fake.{}.{}", APPLICATION_ID, random_hex(16)),
            bot,
            owner,
            guilds,
            gateway_url: format!("ws://{gateway_addr}"),
            voice_endpoint: format!("localhost:{}", voice_addr.port()),
            udp_port,
            next_id: 1_400_000_000_000_000_000,
            shards: Vec::new(),
            voice: HashMap::new(),
            ssrc_guild: HashMap::new(),
            peers: BTreeMap::new(),
            peer_voice: HashMap::new(),
            ssrc_peer: HashMap::new(),
            relay_announced: Default::default(),
            relayed_packets: HashMap::new(),
            relayed_dave_frames: HashMap::new(),
            dave_ended: HashMap::new(),
            user_ssrc: HashMap::new(),
            user_streams: HashMap::new(),
            decode_bot_audio: true,
            dave_version: 0,
            dave_undecryptable: Default::default(),
            voice_gateway_versions: Vec::new(),
            network: (NetworkConditions::default(), fastrand::Rng::with_seed(0)),
            packets_lost: 0,
            identifies: Vec::new(),
            voice_state_updates: Vec::new(),
            registered: Vec::new(),
            interactions: BTreeMap::new(),
            messages: Vec::new(),
            unknown_requests: Vec::new(),
            gateway_resumes: 0,
            voice_resumes: HashMap::new(),
            voice_identifies: HashMap::new(),
            bot_audio: HashMap::new(),
            bot_speaking: HashMap::new(),
            utterances_sent: HashMap::new(),
        };
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            changed: Condvar::new(),
        });
        runtime.spawn(gateway::serve(gateway_listener, shared.clone()));
        runtime.spawn(voice::serve(
            voice_listener,
            tokio_rustls::TlsAcceptor::from(ca.server_config()),
            shared.clone(),
        ));
        runtime.spawn(voice::udp_loop(udp.clone(), shared.clone()));
        let rest = {
            let shared = shared.clone();
            FakeServer::start(move |req| rest::handle(&shared, req))
        };
        FakeDiscord {
            shared,
            rest,
            ca,
            udp,
            runtime: Some(runtime),
        }
    }

    fn test_guild(bot: &UserSpec) -> GuildSpec {
        let everyone = RoleSpec {
            id: GUILD_ID,
            name: "@everyone".into(),
            permissions: model::perms::EVERYONE_DEFAULT,
        };
        let dj = RoleSpec {
            id: DJ_ROLE,
            name: "DJ".into(),
            permissions: 0,
        };
        let channels = vec![
            ChannelSpec {
                id: GENERAL,
                name: "general".into(),
                kind: 0,
                overwrites: vec![],
            },
            ChannelSpec {
                id: LOUNGE,
                name: "Lounge".into(),
                kind: 2,
                overwrites: vec![],
            },
            ChannelSpec {
                id: LOCKED,
                name: "Locked".into(),
                kind: 2,
                overwrites: vec![(BOT_ID, 1, 0, model::perms::CONNECT)],
            },
            ChannelSpec {
                id: TRANSCRIPTS,
                name: "transcripts".into(),
                kind: 0,
                overwrites: vec![],
            },
            ChannelSpec {
                id: STAGE,
                name: "Town Hall".into(),
                kind: 13,
                overwrites: vec![],
            },
            ChannelSpec {
                id: STUDIO,
                name: "Studio".into(),
                kind: 2,
                overwrites: vec![],
            },
        ];
        let mut members = BTreeMap::new();
        for u in [
            bot.clone(),
            user(ALICE, "alice", Some("Alice"), false, vec![DJ_ROLE]),
            user(BOB, "bob", Some("Bob"), false, vec![]),
            user(CAROL, "carol", Some("Carol"), false, vec![]),
            user(JUKEBOX, "jukebox", Some("Jukebox"), true, vec![]),
        ] {
            members.insert(u.id, u);
        }
        GuildSpec {
            id: GUILD_ID,
            name: "Test Server".into(),
            roles: vec![everyone, dj],
            channels,
            members,
            voice_states: BTreeMap::new(),
        }
    }

    /// Adds `n` more guilds for load tests, each with one voice channel and one member
    /// (already in it); returns (guild, voice channel, user) for each. Call before the bot
    /// connects, so that GUILD_CREATE carries them.
    pub fn add_load_guilds(&self, n: usize) -> Vec<(u64, u64, u64)> {
        let mut w = self.shared.lock();
        let mut out = Vec::with_capacity(n);
        for i in 0..n as u64 {
            // Spread over shards: Discord's shard rule reads the id's timestamp bits.
            let id = ((1_000 + i) << 22) | 7;
            let voice = id + 1;
            let text = id + 2;
            let user_id = id + 3;
            let member = user(
                user_id,
                &format!("user{i}"),
                Some(&format!("User {i}")),
                false,
                vec![],
            );
            let mut members = BTreeMap::new();
            members.insert(BOT_ID, w.bot.clone());
            members.insert(user_id, member);
            let mut voice_states = BTreeMap::new();
            voice_states.insert(user_id, (voice, random_hex(16)));
            w.guilds.insert(
                id,
                GuildSpec {
                    id,
                    name: format!("Load {i}"),
                    roles: vec![RoleSpec {
                        id,
                        name: "@everyone".into(),
                        permissions: model::perms::EVERYONE_DEFAULT,
                    }],
                    channels: vec![
                        ChannelSpec {
                            id: text,
                            name: "general".into(),
                            kind: 0,
                            overwrites: vec![],
                        },
                        ChannelSpec {
                            id: voice,
                            name: "Voice".into(),
                            kind: 2,
                            overwrites: vec![],
                        },
                    ],
                    members,
                    voice_states,
                },
            );
            out.push((id, voice, user_id));
        }
        out
    }

    /// Whether the bot's audio is decoded (on by default; load tests turn it off and only
    /// count packets).
    pub fn set_decode_bot_audio(&self, on: bool) {
        self.shared.lock().decode_bot_audio = on;
    }

    /// The DAVE protocol version the voice gateway offers from the next SessionDescription on:
    /// 1 (DAVE, what Discord requires on non-stage calls) or 0 (transport encryption only).
    pub fn set_dave_version(&self, version: u16) {
        self.shared.lock().dave_version = version;
    }

    /// Sets the loss, jitter and reordering the simulated users' packets suffer from now on.
    pub fn set_network(&self, conditions: NetworkConditions) {
        self.shared.lock().network = (conditions, fastrand::Rng::with_seed(conditions.seed));
    }

    /// Makes `user`'s client one whose key exchange failed: never added to the MLS group, its
    /// frames in DAVE's format under a key no member has. Takes effect at the next voice
    /// Identify.
    pub fn set_dave_undecryptable(&self, user: u64) {
        self.shared.lock().dave_undecryptable.insert(user);
    }

    /// Downgrades `guild`'s call to protocol 0 (op 21, then op 22 once the bot is ready);
    /// false when no DAVE call is idle there.
    pub fn dave_downgrade(&self, guild: u64) -> bool {
        self.with_dave(guild, |d, tx| d.downgrade(tx))
    }

    /// Sends the bot its next winning commit damaged (op 29), as a faulty server or a
    /// corrupted frame would: the bot must report it (op 31) and rejoin with a new key package.
    pub fn dave_corrupt_next_commit(&self, guild: u64) -> bool {
        self.with_dave(guild, |d, _| d.corrupt_next_commit())
    }

    /// Upgrades `guild`'s call back to protocol 1 (op 24 for epoch 1); false unless at 0.
    pub fn dave_upgrade(&self, guild: u64) -> bool {
        self.with_dave(guild, |d, tx| d.upgrade(tx))
    }

    fn with_dave(
        &self,
        guild: u64,
        f: impl FnOnce(&mut dave::DaveCall, &UnboundedSender<voice::Outgoing>) -> bool,
    ) -> bool {
        let mut w = self.shared.lock();
        let done = match w.voice.get_mut(&guild).and_then(|s| s.conn.as_mut()) {
            Some(conn) => f(&mut conn.dave, &conn.tx),
            None => false,
        };
        drop(w);
        self.shared.notify();
        done
    }

    /// DAVE on `guild`'s call.
    pub fn dave_status(&self, guild: u64) -> Option<dave::DaveStatus> {
        self.world(|w| w.dave_status(guild))
    }

    /// The bot token the fake accepts.
    pub fn token(&self) -> String {
        self.shared.lock().token.clone()
    }

    /// Adds another bot identity to the test server (as a second application's bot, such as
    /// `scripts/discord-smoke`'s speaker): its own token, gateway session, voice state and
    /// voice connection. Returns its token.
    pub fn add_bot(&self, id: u64, username: &str) -> String {
        let mut w = self.shared.lock();
        let token = format!("fake.{id}.{}", random_hex(16));
        let spec = user(id, username, Some(username), true, vec![]);
        for g in w.guilds.values_mut() {
            g.members.insert(id, spec.clone());
        }
        w.peers.insert(id, (token.clone(), spec));
        token
    }

    /// The REST base to configure (`discord.api_base_url`).
    pub fn api_base_url(&self) -> String {
        self.rest.base_url()
    }

    /// The test CA's PEM file, for the bot's `SSL_CERT_FILE`.
    pub fn ca_file(&self) -> &Path {
        self.ca.ca_file()
    }

    /// The environment the bot needs: its token, the CA, the API base URL.
    pub fn bot_env(&self) -> Vec<(String, String)> {
        vec![
            ("DISCORD_BOT_TOKEN".into(), self.token()),
            ("SSL_CERT_FILE".into(), self.ca_file().display().to_string()),
            (
                "OPENCLAW__DISCORD__API_BASE_URL".into(),
                self.api_base_url(),
            ),
            (
                "OPENCLAW__DISCORD__APPLICATION_ID".into(),
                APPLICATION_ID.to_string(),
            ),
        ]
    }

    /// Reads the world.
    pub fn world<T>(&self, f: impl FnOnce(&World) -> T) -> T {
        f(&self.shared.lock())
    }

    /// Waits until `f` returns `Some`, at most `timeout`.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&World) -> Option<T>,
    ) -> Option<T> {
        let end = Instant::now() + timeout;
        let mut w = self.shared.lock();
        loop {
            if let Some(v) = f(&w) {
                return Some(v);
            }
            let now = Instant::now();
            if now >= end {
                return None;
            }
            w = self
                .shared
                .changed
                .wait_timeout(w, (end - now).min(POLL))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits until the bot has identified on `shards` gateway connections and got their
    /// guilds.
    pub fn wait_ready(&self, shards: usize, timeout: Duration) -> bool {
        self.wait_for(timeout, |w| (w.shards.len() >= shards).then_some(()))
            .is_some()
    }

    /// Puts `user` in voice channel `channel` (or out of voice with `None`), telling the bot
    /// (VOICE_STATE_UPDATE) and, when the bot is in the channel left, its voice connection
    /// (ClientDisconnect).
    pub fn move_user(&self, guild: u64, user: u64, channel: Option<u64>) {
        let mut w = self.shared.lock();
        let session = random_hex(16);
        let before = w.voice_channel_of(guild, user);
        let Some(g) = w.guilds.get_mut(&guild) else {
            return;
        };
        match channel {
            Some(c) => {
                g.voice_states.insert(user, (c, session.clone()));
            }
            None => {
                g.voice_states.remove(&user);
            }
        }
        let member = w.member_json(guild, user);
        w.dispatch(
            guild,
            "VOICE_STATE_UPDATE",
            model::voice_state(guild, user, channel, &session, member),
        );
        let bot_channel = w.bot_channel(guild);
        if let Some(conn) = w.voice.get_mut(&guild).and_then(|s| s.conn.as_mut()) {
            if before.is_some() && before == bot_channel && channel != before {
                let _ = conn.tx.send(voice::Outgoing::Json(json!({
                    "op": 13, "d": {"user_id": user.to_string()}
                })));
                conn.dave.user_left(user, &conn.tx);
            } else if channel.is_some() && channel == bot_channel && before != channel {
                // ClientsConnect first: members refuse Adds for users not announced.
                let _ = conn.tx.send(voice::Outgoing::Json(json!({
                    "op": 11, "d": {"user_ids": [user.to_string()]}
                })));
                conn.dave.user_joined(user, &conn.tx);
            }
        }
        drop(w);
        self.shared.notify();
    }

    /// A moderator moves the bot to voice channel `channel` of `guild`: Discord's
    /// VOICE_STATE_UPDATE (new channel, new voice session) and VOICE_SERVER_UPDATE (new
    /// token); the bot's voice client connects again for the new channel.
    pub fn move_bot(&self, guild: u64, channel: u64) {
        let mut w = self.shared.lock();
        gateway::place_bot(&mut w, guild, Some(channel));
        drop(w);
        self.shared.notify();
    }

    /// A moderator disconnects the bot from voice in `guild`: VOICE_STATE_UPDATE without a
    /// channel, and its voice connection closed (4014, "disconnected").
    pub fn disconnect_bot(&self, guild: u64) {
        let mut w = self.shared.lock();
        gateway::place_bot(&mut w, guild, None);
        drop(w);
        self.shared.notify();
    }

    /// `user` types `/voice <subcommand>` in `#general` (or the load guild's text channel);
    /// returns the interaction id.
    pub fn slash(&self, guild: u64, user: u64, subcommand: &str) -> u64 {
        let mut w = self.shared.lock();
        let id = w.next_id();
        let token = format!("itk.{}", random_hex(24));
        let g = w.guilds.get(&guild).expect("a known guild");
        let channel = g
            .channels
            .iter()
            .find(|c| c.kind == 0)
            .expect("a text channel")
            .clone();
        let u = g.members.get(&user).expect("a member of the guild");
        let member = model::member(guild, u, Some(model::perms::EVERYONE_DEFAULT));
        let data = model::command_interaction(
            id,
            &token,
            APPLICATION_ID,
            COMMAND_ID,
            guild,
            &channel,
            member,
            subcommand,
        );
        w.interactions.insert(
            id,
            InteractionRecord {
                id,
                token,
                guild,
                user,
                subcommand: subcommand.to_string(),
                callbacks: Vec::new(),
                edits: Vec::new(),
                followups: Vec::new(),
                sent: Instant::now(),
            },
        );
        assert!(
            w.dispatch(guild, "INTERACTION_CREATE", data),
            "no gateway connection serves guild {guild}"
        );
        id
    }

    /// The bot's answer to interaction `id`, once it has text.
    pub fn wait_reply(&self, id: u64, timeout: Duration) -> Option<InteractionReply> {
        self.wait_for(timeout, |w| w.interactions.get(&id).and_then(|i| i.reply()))
    }

    /// The interaction record (callbacks, edits, follow-ups).
    pub fn interaction(&self, id: u64) -> Option<InteractionRecord> {
        self.world(|w| w.interactions.get(&id).cloned())
    }

    /// Waits until the bot's voice connection in `guild` is up; the channel it joined.
    pub fn wait_bot_connected(&self, guild: u64, timeout: Duration) -> Option<u64> {
        self.wait_for(timeout, |w| {
            w.bot_connected(guild)
                .then(|| w.bot_channel(guild))
                .flatten()
        })
    }

    /// `user` says `samples` (48 kHz mono) in `guild`'s call: Opus-encoded, encrypted and sent
    /// in real time from the user's SSRC, with Speaking sent as `options` say, then five
    /// silence frames. Returns at once; [`FakeDiscord::wait_said`] waits for the end.
    pub fn say(&self, guild: u64, user: u64, samples: &[i16], options: SayOptions) {
        let frames = Arc::new(audio::opus_frames(samples));
        self.say_frames(guild, user, frames, options, 1);
    }

    /// Sends pre-encoded Opus frames `repeat` times (load tests share one encoding), with
    /// `options.gap_ms` between repeats.
    pub fn say_frames(
        &self,
        guild: u64,
        user: u64,
        frames: Arc<Vec<Vec<u8>>>,
        options: SayOptions,
        repeat: usize,
    ) {
        let ssrc = {
            let mut w = self.shared.lock();
            let next = 10_000 + w.user_ssrc.len() as u32;
            *w.user_ssrc.entry((guild, user)).or_insert(next)
        };
        if let Some(rt) = &self.runtime {
            rt.spawn(voice::speak(
                self.shared.clone(),
                self.udp.clone(),
                guild,
                user,
                ssrc,
                frames,
                options,
                repeat,
            ));
        }
    }

    /// Waits until `count` utterances have been sent in `guild`.
    pub fn wait_said(&self, guild: u64, count: usize, timeout: Duration) -> bool {
        self.wait_for(timeout, |w| {
            (w.utterances_sent.get(&guild).copied().unwrap_or(0) >= count).then_some(())
        })
        .is_some()
    }

    /// What the bot has sent in `guild` so far.
    pub fn bot_audio(&self, guild: u64) -> BotAudio {
        self.world(|w| w.bot_audio.get(&guild).cloned().unwrap_or_default())
    }

    /// Drops the bot's voice gateway connection in `guild` with close `code` (4015 "voice
    /// server crashed" is resumable; 4014 "disconnected" is not).
    pub fn drop_voice(&self, guild: u64, code: u16) -> bool {
        let w = self.shared.lock();
        match w.voice.get(&guild).and_then(|s| s.conn.as_ref()) {
            Some(conn) => conn.tx.send(voice::Outgoing::Close(code)).is_ok(),
            None => false,
        }
    }

    /// Closes every gateway connection with `code` (4000 "unknown error" lets the bot
    /// resume).
    pub fn drop_gateway(&self, code: u16) {
        let w = self.shared.lock();
        for s in &w.shards {
            let _ = s.tx.send(gateway::Outgoing::Close(code));
        }
    }
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}
