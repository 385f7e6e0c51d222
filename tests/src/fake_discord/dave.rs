//! DAVE (Discord's end-to-end encryption for voice, protocol version 1) in the fake voice
//! gateway: the server's part of the protocol (<https://daveprotocol.com>, voice gateway
//! opcodes 21-31), and the simulated users as real MLS members.
//!
//! The fake is the MLS delivery service and external sender: it signs Add and Remove
//! proposals (openmls), relays the winning commit and its welcome, and runs each transition
//! with the bot (prepare, ready, execute). It holds no group secret. Each simulated user in the
//! bot's channel is a `davey::DaveSession`, the client songbird itself runs, so their Opus is
//! DAVE-encrypted as a real client's is, and the bot's audio is decrypted with the group's
//! keys.
//!
//! Who commits: when a group must be formed (the bot's first key package, an upgrade from
//! protocol 0, the bot rejoining), a simulated user commits and the bot is welcomed (op 30);
//! in an established group the bot commits (op 28) and the fake announces it (op 29). Both of
//! songbird's paths run in every DAVE call that sees someone join.
//!
//! Other real clients (a second bot identity's songbird, [`DaveCall::attach_peer`]) join the
//! bot's call: they get its external sender, their key packages are proposed like the
//! simulated users', and the bot's commit adds them (op 30 with the welcome; op 27 and op 29
//! once they are members); when only real clients are pending, each gets the others' Adds and
//! the bot's commit forms the group (the fake drops the other clients' commits, as a
//! first-commit-wins server may). A real client's leaving proposes its removal, or resets the
//! bot when it is left alone. Their op 23 is not awaited: the bot's op 23 executes the
//! transition for all (the protocol's "or a timeout").
//!
//! Simplifications, each allowed by the protocol: one proposal batch at a time (a change that
//! comes meanwhile waits for the transition to end); a new voice Identify starts a new group
//! (Discord would remove the old leaf and add the new one); the leaf to remove is read from a
//! member's view of the ratchet tree, which is public.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU16;
use std::time::{Duration, Instant};

use davey::{DaveSession, MediaType, ProposalsOperationType};
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use super::voice::Outgoing;

/// DAVE protocol version 1's ciphersuite.
const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256;
/// DAVE's marker at the end of every encrypted frame.
const MAGIC: [u8; 2] = [0xFA, 0xFA];
/// How long receivers keep the keys of a group they left (the protocol's 10 s).
const OLD_KEYS: Duration = Duration::from_secs(10);

/// What the fake knows of one guild's DAVE call, for tests.
#[derive(Debug, Clone, Default)]
pub struct DaveStatus {
    /// The protocol version in force: 0 (transport encryption only) or 1.
    pub version: u16,
    /// The established group's epoch, if there is one.
    pub epoch: Option<u64>,
    /// The group's members as a simulated member sees them (the bot included), sorted.
    pub members: Vec<u64>,
    /// Transitions executed (op 22 sent after the bot's op 23).
    pub transitions: u32,
    /// Key packages the bot sent (op 26).
    pub key_packages_from_bot: u32,
    /// Commits of the bot's that won and were announced (op 29).
    pub commits_from_bot: u32,
    /// Welcomes sent to the bot (op 30).
    pub welcomes_to_bot: u32,
    /// Invalid commit/welcome reports from the bot (op 31).
    pub invalid_from_bot: u32,
    /// Bot audio frames that were DAVE-encrypted and that a member decrypted.
    pub bot_frames_decrypted: usize,
    /// Bot audio frames sent without DAVE (silence, or before the group was ready).
    pub bot_frames_plain: usize,
    /// Bot audio frames with DAVE's marker that no member could decrypt.
    pub bot_frames_failed: usize,
    /// Simulated users' frames sent DAVE-encrypted.
    pub user_frames_encrypted: usize,
    /// What went wrong on the fake's side (a test asserts there is nothing).
    pub errors: Vec<String>,
}

/// The fake voice server's signing key and the `ExternalSender` it hands out (op 25).
struct ExternalSenderKey {
    signer: SignatureKeyPair,
    package: Vec<u8>,
}

impl ExternalSenderKey {
    fn new() -> ExternalSenderKey {
        let signer =
            SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).expect("a P-256 signing key");
        let sender = ExternalSender::new(
            signer.public().into(),
            BasicCredential::new(b"fake-discord".to_vec()).into(),
        );
        let package = sender
            .tls_serialize_detached()
            .expect("an ExternalSender serializes");
        ExternalSenderKey { signer, package }
    }

    /// `MLSMessage`s with the external proposals for `group` at `epoch`, as op 27 carries them
    /// (`u8` operation, then the messages as one `opaque<V>`).
    fn proposals(
        &self,
        group: &GroupId,
        epoch: u64,
        removes: &[LeafNodeIndex],
        adds: &[KeyPackage],
    ) -> Result<Vec<u8>, String> {
        let mut all = Vec::new();
        for leaf in removes {
            let m = ExternalProposal::new_remove::<OpenMlsRustCrypto>(
                *leaf,
                group.clone(),
                GroupEpoch::from(epoch),
                &self.signer,
                SenderExtensionIndex::new(0),
            )
            .map_err(|e| format!("remove proposal: {e:?}"))?;
            all.extend(m.tls_serialize_detached().map_err(|e| e.to_string())?);
        }
        for kp in adds {
            let m = ExternalProposal::new_add::<OpenMlsRustCrypto>(
                kp.clone(),
                group.clone(),
                GroupEpoch::from(epoch),
                &self.signer,
                SenderExtensionIndex::new(0),
            )
            .map_err(|e| format!("add proposal: {e:?}"))?;
            all.extend(m.tls_serialize_detached().map_err(|e| e.to_string())?);
        }
        VLBytes::new(all)
            .tls_serialize_detached()
            .map_err(|e| e.to_string())
    }
}

/// Checks a key package as the voice server must: signature, ciphersuite, and the basic
/// identity being the user's id (8 bytes, big-endian).
fn validate_key_package(bytes: &[u8], user: u64) -> Result<KeyPackage, String> {
    let provider = OpenMlsRustCrypto::default();
    let kp = KeyPackageIn::tls_deserialize_exact_bytes(bytes)
        .map_err(|e| format!("key package of {user} does not parse: {e}"))?
        .validate(provider.crypto(), ProtocolVersion::Mls10)
        .map_err(|e| format!("key package of {user} is invalid: {e:?}"))?;
    if kp.ciphersuite() != CIPHERSUITE {
        return Err(format!(
            "key package of {user}: ciphersuite {:?}",
            kp.ciphersuite()
        ));
    }
    if kp.leaf_node().credential().serialized_content() != user.to_be_bytes() {
        return Err(format!("key package of {user} names someone else"));
    }
    Ok(kp)
}

/// One simulated user's DAVE client.
struct Participant {
    session: DaveSession,
    /// The key package not yet added to the group.
    key_package: Option<KeyPackage>,
    /// Whether the user is in the established group.
    member: bool,
}

impl Participant {
    fn new(user: u64, channel: u64, sender: &[u8]) -> Result<Participant, String> {
        let mut session = DaveSession::new(NonZeroU16::MIN, user, channel, None)
            .map_err(|e| format!("DAVE session of {user}: {e:?}"))?;
        session
            .set_external_sender(sender)
            .map_err(|e| format!("external sender for {user}: {e:?}"))?;
        let bytes = session
            .create_key_package()
            .map_err(|e| format!("key package of {user}: {e:?}"))?;
        Ok(Participant {
            session,
            key_package: Some(validate_key_package(&bytes, user)?),
            member: false,
        })
    }
}

/// Who the welcome of an in-flight commit is for.
struct InFlight {
    /// The epoch the proposals were made at.
    epoch: u64,
    /// Simulated users joining with this commit.
    joiners: Vec<u64>,
    /// Other real clients (bot identities) joining with this commit.
    peer_joiners: Vec<u64>,
}

/// Another real client in the call (a second bot identity's songbird): a real MLS member
/// whose messages the fake relays, as it does the bot's.
struct PeerMember {
    tx: UnboundedSender<Outgoing>,
    /// Its key package, until it is added.
    key_package: Option<KeyPackage>,
    /// Whether it is in the established group.
    member: bool,
}

/// One DAVE call: the server's state for the bot's voice connection in a guild.
pub(crate) struct DaveCall {
    bot: u64,
    group_id: GroupId,
    channel: u64,
    sender: ExternalSenderKey,
    version: u16,
    epoch: Option<u64>,
    /// Simulated users in the channel (the bot excluded).
    users: BTreeSet<u64>,
    /// Users whose frames cannot be decrypted: never proposed to the group.
    broken: BTreeSet<u64>,
    fakes: BTreeMap<u64, Participant>,
    /// Sessions of a group that ended, kept to decrypt the bot's last frames.
    retired: Vec<(Instant, Participant)>,
    bot_key_package: Option<KeyPackage>,
    bot_member: bool,
    /// Other real clients in the call, by user id.
    peers: BTreeMap<u64, PeerMember>,
    /// Leaves to remove at the next commit.
    leaving: Vec<LeafNodeIndex>,
    in_flight: Option<InFlight>,
    /// A transition waiting for the bot's op 23: its id and the version after it.
    awaiting: Option<(u16, u16)>,
    next_tid: u16,
    /// Announce the bot's next commit to it damaged (tests op 31 and the rejoin).
    corrupt_next_commit: bool,
    status: DaveStatus,
}

/// A JSON payload for the bot.
fn op(code: u64, d: Value) -> Outgoing {
    Outgoing::Json(json!({"op": code, "d": d}))
}

/// A binary payload for the bot: opcode, then (for 29 and 30) the transition id.
fn binary(code: u8, tid: Option<u16>, body: &[u8]) -> Outgoing {
    let mut out = Vec::with_capacity(3 + body.len());
    out.push(code);
    if let Some(t) = tid {
        out.extend_from_slice(&t.to_be_bytes());
    }
    out.extend_from_slice(body);
    Outgoing::Binary(out)
}

impl DaveCall {
    /// A call in `channel` offering `version`, with `users` already there.
    pub(crate) fn new(
        bot: u64,
        channel: u64,
        version: u16,
        users: impl IntoIterator<Item = u64>,
        broken: BTreeSet<u64>,
    ) -> DaveCall {
        DaveCall {
            bot,
            group_id: GroupId::from_slice(&channel.to_be_bytes()),
            channel,
            sender: ExternalSenderKey::new(),
            version,
            epoch: None,
            users: users.into_iter().collect(),
            broken,
            fakes: BTreeMap::new(),
            retired: Vec::new(),
            bot_key_package: None,
            bot_member: false,
            peers: BTreeMap::new(),
            leaving: Vec::new(),
            in_flight: None,
            awaiting: None,
            next_tid: 0,
            corrupt_next_commit: false,
            status: DaveStatus::default(),
        }
    }

    /// The version op 4 announces.
    pub(crate) fn version(&self) -> u16 {
        self.version
    }

    /// What tests see.
    pub(crate) fn status(&self) -> DaveStatus {
        let mut s = self.status.clone();
        s.version = self.version;
        s.epoch = self.epoch;
        s.members = self
            .fakes
            .values()
            .find(|p| p.member)
            .and_then(|p| p.session.get_user_ids())
            .unwrap_or_default();
        s.members.sort_unstable();
        s
    }

    fn error(&mut self, e: String) {
        eprintln!("fake Discord DAVE: {e}");
        self.status.errors.push(e);
    }

    fn tid(&mut self) -> u16 {
        self.next_tid = self.next_tid.wrapping_add(1).max(1);
        self.next_tid
    }

    /// After SessionDescription: the external sender (op 25), and the simulated users' key
    /// packages.
    pub(crate) fn described(&mut self, tx: &UnboundedSender<Outgoing>) {
        if self.version == 0 {
            return;
        }
        let _ = tx.send(binary(25, None, &self.sender.package));
        self.start_participants();
    }

    fn start_participants(&mut self) {
        let users: Vec<u64> = self
            .users
            .iter()
            .filter(|u| !self.broken.contains(u))
            .copied()
            .collect();
        for user in users {
            self.add_participant(user);
        }
    }

    fn add_participant(&mut self, user: u64) {
        match Participant::new(user, self.channel, &self.sender.package) {
            Ok(p) => {
                self.fakes.insert(user, p);
            }
            Err(e) => self.error(e),
        }
    }

    /// A simulated user joined the channel (after op 11).
    pub(crate) fn user_joined(&mut self, user: u64, tx: &UnboundedSender<Outgoing>) {
        self.users.insert(user);
        if self.version != 0 && !self.broken.contains(&user) {
            self.add_participant(user);
            self.step(tx);
        }
    }

    /// A simulated user left the channel (after op 13).
    pub(crate) fn user_left(&mut self, user: u64, tx: &UnboundedSender<Outgoing>) {
        self.users.remove(&user);
        if let Some(p) = self.fakes.remove(&user) {
            if p.member {
                if let Some(leaf) = p.session.own_leaf_index() {
                    self.leaving.push(leaf);
                }
            }
            self.retired.push((Instant::now(), p));
            self.step(tx);
        }
    }

    /// Op 26.
    pub(crate) fn on_key_package(&mut self, bytes: &[u8], tx: &UnboundedSender<Outgoing>) {
        self.status.key_packages_from_bot += 1;
        if self.version == 0 {
            return;
        }
        let kp = match validate_key_package(bytes, self.bot) {
            Ok(kp) => kp,
            Err(e) => return self.error(e),
        };
        if self.bot_member {
            // The bot starts over (after op 31, or a reset of its own): its old leaf goes.
            if let Some(leaf) = self.leaf_of(self.bot) {
                self.leaving.push(leaf);
            }
            self.bot_member = false;
        }
        self.bot_key_package = Some(kp);
        self.step(tx);
    }

    /// Op 28: the bot's commit, and its welcome when it adds someone.
    pub(crate) fn on_commit_welcome(&mut self, bytes: &[u8], tx: &UnboundedSender<Outgoing>) {
        let Ok((message, rest)) = MlsMessageIn::tls_deserialize_bytes(bytes) else {
            return self.error("op 28 does not parse".into());
        };
        let epoch = match message.try_into_protocol_message() {
            Ok(m) => m.epoch().as_u64(),
            Err(e) => return self.error(format!("op 28 is no commit: {e:?}")),
        };
        let current = self.in_flight.as_ref().map(|f| f.epoch);
        if current != Some(epoch) {
            // A losing commit (another member's won, or the epoch moved on): dropped.
            return;
        }
        let commit = &bytes[..bytes.len() - rest.len()];
        let welcome = (!rest.is_empty()).then_some(rest);
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        // Announced first, so the bot and the members take the new keys at about the same time
        // (davey switches keys when it merges a commit, not at the transition's execution).
        let tid = self.tid();
        if std::mem::take(&mut self.corrupt_next_commit) {
            // The members get the real commit; the bot one it cannot use, so it answers op 31
            // and starts over with a new key package.
            let mut damaged = commit.to_vec();
            let last = damaged.len() - 1;
            damaged[last] ^= 0xFF;
            let _ = tx.send(binary(29, Some(tid), &damaged));
        } else {
            let _ = tx.send(binary(29, Some(tid), commit));
        }
        for p in self.fakes.values_mut().filter(|p| p.member) {
            if let Err(e) = p.session.process_commit(commit) {
                let e = format!("a member could not process the bot's commit: {e:?}");
                self.status.errors.push(e);
            }
        }
        for peer in self.peers.values().filter(|p| p.member) {
            let _ = peer.tx.send(binary(29, Some(tid), commit));
        }
        self.welcome_fakes(&flight.joiners, welcome);
        if let Some(w) = welcome {
            self.welcome_peers_with(&flight.peer_joiners, w, tid);
        }
        self.status.commits_from_bot += 1;
        if !self.bot_member {
            // A group formed by the bot's commit (real clients only).
            self.bot_member = true;
            self.bot_key_package = None;
        }
        self.leaving.clear();
        self.epoch = Some(epoch + 1);
        self.awaiting = Some((tid, self.version));
    }

    fn welcome_fakes(&mut self, joiners: &[u64], welcome: Option<&[u8]>) {
        for user in joiners {
            let Some(p) = self.fakes.get_mut(user) else {
                continue;
            };
            let result = match welcome {
                Some(w) => p.session.process_welcome(w).map_err(|e| format!("{e:?}")),
                None => Err("no welcome".into()),
            };
            match result {
                Ok(()) => {
                    p.member = true;
                    p.key_package = None;
                }
                Err(e) => {
                    let e = format!("user {user} could not join: {e}");
                    self.status.errors.push(e);
                }
            }
        }
    }

    /// Op 23.
    pub(crate) fn on_ready(&mut self, tid: u16, tx: &UnboundedSender<Outgoing>) {
        let Some((awaited, version)) = self.awaiting else {
            return;
        };
        if awaited != tid {
            return;
        }
        self.awaiting = None;
        let _ = tx.send(op(22, json!({"transition_id": tid})));
        for peer in self.peers.values().filter(|p| p.member) {
            let _ = peer.tx.send(op(22, json!({"transition_id": tid})));
        }
        self.status.transitions += 1;
        if version == 0 && self.version != 0 {
            self.version = 0;
            self.end_group();
        }
        self.step(tx);
    }

    /// Op 31: the bot could not use a commit or welcome; it sends a new key package next.
    pub(crate) fn on_invalid(&mut self, tid: u16, tx: &UnboundedSender<Outgoing>) {
        self.status.invalid_from_bot += 1;
        if self.awaiting.is_some_and(|(t, _)| t == tid) {
            self.awaiting = None;
        }
        self.step(tx);
    }

    fn end_group(&mut self) {
        let now = Instant::now();
        let fakes = std::mem::take(&mut self.fakes);
        self.retired.extend(fakes.into_values().map(|p| (now, p)));
        self.epoch = None;
        self.bot_member = false;
        self.bot_key_package = None;
        self.peers.clear();
        self.leaving.clear();
        self.in_flight = None;
    }

    /// Announces the bot's next winning commit to it damaged.
    pub(crate) fn corrupt_next_commit(&mut self) -> bool {
        self.corrupt_next_commit = true;
        true
    }

    /// Downgrade to protocol 0 (op 21); false while another transition runs.
    pub(crate) fn downgrade(&mut self, tx: &UnboundedSender<Outgoing>) -> bool {
        if self.version == 0 || self.awaiting.is_some() || self.in_flight.is_some() {
            return false;
        }
        let tid = self.tid();
        let _ = tx.send(op(21, json!({"protocol_version": 0, "transition_id": tid})));
        self.awaiting = Some((tid, 0));
        true
    }

    /// Upgrade to protocol 1 (op 24 for epoch 1, then the external sender); false unless at 0.
    pub(crate) fn upgrade(&mut self, tx: &UnboundedSender<Outgoing>) -> bool {
        if self.version != 0 || self.awaiting.is_some() {
            return false;
        }
        self.version = 1;
        let _ = tx.send(op(24, json!({"protocol_version": 1, "epoch": 1})));
        self.described(tx);
        true
    }

    /// The leaf of `user` as a simulated member sees the tree.
    fn leaf_of(&self, user: u64) -> Option<LeafNodeIndex> {
        let member = self.fakes.values().find(|p| p.member)?;
        member
            .session
            .group()?
            .members()
            .find(|m| m.credential.serialized_content() == user.to_be_bytes())
            .map(|m| m.index)
    }

    /// Starts the next change, if any and none is running.
    fn step(&mut self, tx: &UnboundedSender<Outgoing>) {
        if self.version == 0 || self.in_flight.is_some() || self.awaiting.is_some() {
            return;
        }
        match self.epoch {
            None => self.form(tx),
            Some(epoch) => self.change(epoch, tx),
        }
    }

    /// No established group: the first pending simulated user commits Adds for everyone
    /// pending (the bot included); the bot gets the Adds too (op 27), then the welcome.
    fn form(&mut self, tx: &UnboundedSender<Outgoing>) {
        let Some(bot_kp) = self.bot_key_package.clone() else {
            return;
        };
        let pending: Vec<u64> = self
            .fakes
            .iter()
            .filter(|(_, p)| p.key_package.is_some())
            .map(|(u, _)| *u)
            .collect();
        // No simulated user to commit: real clients only (the bot and others).
        let Some(&committer) = pending.first() else {
            return self.form_with_peers(bot_kp, tx);
        };
        let kps: Vec<KeyPackage> = pending
            .iter()
            .filter_map(|u| self.fakes[u].key_package.clone())
            .collect();
        match self.sender.proposals(&self.group_id, 0, &[], &kps) {
            Ok(body) => {
                let _ = tx.send(binary(27, None, &[&[0u8][..], &body].concat()));
            }
            Err(e) => return self.error(e),
        }
        let mut others = vec![bot_kp];
        others.extend(kps.into_iter().skip(1));
        let peer_joiners = self.pending_peers();
        others.extend(self.peer_key_packages(&peer_joiners));
        let joiners: Vec<u64> = pending[1..].to_vec();
        let Some(welcome) = self.commit_by(committer, &[], &others, 0, &[]) else {
            return;
        };
        self.welcome_fakes(&joiners, Some(&welcome));
        self.welcome_peers(&peer_joiners, &welcome);
        self.welcome_bot(welcome, 0, tx);
    }

    /// No established group and no simulated user: each pending real client gets the Adds of
    /// the others (op 27 at epoch 0) and the bot's commit wins (the fake drops the others'):
    /// op 29 to the bot, op 30 to the rest. A lone member stays pending.
    fn form_with_peers(&mut self, bot_kp: KeyPackage, tx: &UnboundedSender<Outgoing>) {
        let peer_joiners = self.pending_peers();
        if peer_joiners.is_empty() {
            return;
        }
        let adds = self.peer_key_packages(&peer_joiners);
        let for_bot = self.sender.proposals(&self.group_id, 0, &[], &adds);
        let for_peers = self.sender.proposals(&self.group_id, 0, &[], &[bot_kp]);
        let (for_bot, for_peers) = match (for_bot, for_peers) {
            (Ok(b), Ok(p)) => (b, p),
            (Err(e), _) | (_, Err(e)) => return self.error(e),
        };
        let _ = tx.send(binary(27, None, &[&[0u8][..], &for_bot].concat()));
        for user in &peer_joiners {
            if let Some(peer) = self.peers.get(user) {
                let _ = peer
                    .tx
                    .send(binary(27, None, &[&[0u8][..], &for_peers].concat()));
            }
        }
        self.in_flight = Some(InFlight {
            epoch: 0,
            joiners: Vec::new(),
            peer_joiners,
        });
    }

    /// Simulated user `committer` processes the proposals (as do `also`, other members) and
    /// commits; returns the welcome.
    fn commit_by(
        &mut self,
        committer: u64,
        removes: &[LeafNodeIndex],
        adds: &[KeyPackage],
        epoch: u64,
        also: &[u64],
    ) -> Option<Vec<u8>> {
        let body = match self.sender.proposals(&self.group_id, epoch, removes, adds) {
            Ok(b) => b,
            Err(e) => {
                self.error(e);
                return None;
            }
        };
        for user in also {
            let p = self.fakes.get_mut(user)?;
            let _ = p
                .session
                .process_proposals(ProposalsOperationType::APPEND, &body, None);
        }
        let p = self.fakes.get_mut(&committer)?;
        let result = p
            .session
            .process_proposals(ProposalsOperationType::APPEND, &body, None);
        let cw = match result {
            Ok(Some(cw)) => cw,
            other => {
                let e = format!("user {committer} made no commit: {:?}", other.err());
                self.error(e);
                return None;
            }
        };
        if let Err(e) = p.session.process_commit(&cw.commit) {
            self.error(format!("user {committer}'s own commit: {e:?}"));
            return None;
        }
        p.member = true;
        p.key_package = None;
        for user in also {
            if let Some(p) = self.fakes.get_mut(user) {
                if let Err(e) = p.session.process_commit(&cw.commit) {
                    let e = format!("user {user} could not process a commit: {e:?}");
                    self.status.errors.push(e);
                }
            }
        }
        cw.welcome
    }

    fn welcome_bot(&mut self, welcome: Vec<u8>, epoch: u64, tx: &UnboundedSender<Outgoing>) {
        let tid = self.tid();
        let _ = tx.send(binary(30, Some(tid), &welcome));
        self.status.welcomes_to_bot += 1;
        self.bot_key_package = None;
        self.bot_member = true;
        self.leaving.clear();
        self.epoch = Some(epoch + 1);
        self.awaiting = Some((tid, self.version));
    }

    /// An established group at `epoch`: removes and adds proposed; the bot commits when it is
    /// a member, a simulated member when the bot is the one joining.
    fn change(&mut self, epoch: u64, tx: &UnboundedSender<Outgoing>) {
        let removes = self.leaving.clone();
        let joiners: Vec<u64> = self
            .fakes
            .iter()
            .filter(|(_, p)| !p.member && p.key_package.is_some())
            .map(|(u, _)| *u)
            .collect();
        let members: Vec<u64> = self
            .fakes
            .iter()
            .filter(|(_, p)| p.member)
            .map(|(u, _)| *u)
            .collect();
        let bot_joining = !self.bot_member && self.bot_key_package.is_some();
        let peer_joiners = self.pending_peers();
        if removes.is_empty() && joiners.is_empty() && !bot_joining && peer_joiners.is_empty() {
            return;
        }
        if members.is_empty() && joiners.is_empty() {
            return self.sole_member_reset(tx);
        }
        if members.is_empty() {
            // Nobody left to commit for the bot: start a new group.
            self.end_group_keep_users();
            return self.step(tx);
        }
        let mut adds: Vec<KeyPackage> = joiners
            .iter()
            .filter_map(|u| self.fakes[u].key_package.clone())
            .collect();
        adds.extend(self.peer_key_packages(&peer_joiners));
        if self.bot_member {
            let body = match self
                .sender
                .proposals(&self.group_id, epoch, &removes, &adds)
            {
                Ok(body) => body,
                Err(e) => return self.error(e),
            };
            let _ = tx.send(binary(27, None, &[&[0u8][..], &body].concat()));
            for user in &members {
                if let Some(p) = self.fakes.get_mut(user) {
                    // Every member stores the proposals; their own commits lose to the bot's.
                    let _ =
                        p.session
                            .process_proposals(ProposalsOperationType::APPEND, &body, None);
                }
            }
            for peer in self.peers.values().filter(|p| p.member) {
                let _ = peer
                    .tx
                    .send(binary(27, None, &[&[0u8][..], &body].concat()));
            }
            self.in_flight = Some(InFlight {
                epoch,
                joiners,
                peer_joiners,
            });
            return;
        }
        let Some(bot_kp) = self.bot_key_package.clone() else {
            return;
        };
        adds.push(bot_kp);
        let Some(welcome) = self.commit_by(members[0], &removes, &adds, epoch, &members[1..])
        else {
            return;
        };
        self.welcome_fakes(&joiners, Some(&welcome));
        self.welcome_peers(&peer_joiners, &welcome);
        self.welcome_bot(welcome, epoch, tx);
    }

    /// Only the bot would be left: it goes back to a pending group of its own (op 24 for
    /// epoch 1, op 21 with transition 0) and sends a new key package.
    fn sole_member_reset(&mut self, tx: &UnboundedSender<Outgoing>) {
        self.end_group_keep_users();
        let _ = tx.send(op(
            24,
            json!({"protocol_version": self.version, "epoch": 1}),
        ));
        let _ = tx.send(op(
            21,
            json!({"protocol_version": self.version, "transition_id": 0}),
        ));
    }

    /// Ends the group but keeps the simulated users in the call with new key packages.
    fn end_group_keep_users(&mut self) {
        self.end_group();
        self.start_participants();
    }

    /// Another real client (a second bot identity) in this call: it gets this call's external
    /// sender (op 25), and its key package, commits and readiness go through this call, so
    /// that it and the bot end up in one group.
    pub(crate) fn attach_peer(&mut self, user: u64, tx: &UnboundedSender<Outgoing>) {
        let _ = tx.send(binary(25, None, &self.sender.package));
        self.peers.insert(
            user,
            PeerMember {
                tx: tx.clone(),
                key_package: None,
                member: false,
            },
        );
    }

    /// Another real client left the call: its leaf is removed at the next commit.
    pub(crate) fn peer_left(&mut self, user: u64, tx: &UnboundedSender<Outgoing>) {
        if let Some(peer) = self.peers.remove(&user) {
            if peer.member {
                if let Some(leaf) = self.leaf_of(user) {
                    self.leaving.push(leaf);
                }
            }
            let others =
                self.fakes.values().any(|p| p.member) || self.peers.values().any(|p| p.member);
            if self.bot_member && !others && self.in_flight.is_none() && self.awaiting.is_none() {
                // Only the bot is left in the group.
                return self.sole_member_reset(tx);
            }
            self.step(tx);
        }
    }

    /// Whether `payload` ends with DAVE's marker (an encrypted frame, as the SFU sees it).
    pub(crate) fn is_dave_frame(payload: &[u8]) -> bool {
        payload.len() >= 11 && payload.ends_with(&MAGIC)
    }

    /// Whether `user` is a real client attached to this call.
    pub(crate) fn has_peer(&self, user: u64) -> bool {
        self.peers.contains_key(&user)
    }

    /// Op 26 from another real client: proposed at the next change.
    pub(crate) fn on_peer_key_package(
        &mut self,
        user: u64,
        bytes: &[u8],
        bot_tx: &UnboundedSender<Outgoing>,
    ) {
        let kp = match validate_key_package(bytes, user) {
            Ok(kp) => kp,
            Err(e) => return self.error(e),
        };
        if let Some(peer) = self.peers.get_mut(&user) {
            peer.key_package = Some(kp);
            peer.member = false;
        }
        self.step(bot_tx);
    }

    /// Real clients with a key package not yet added.
    fn pending_peers(&self) -> Vec<u64> {
        self.peers
            .iter()
            .filter(|(_, p)| !p.member && p.key_package.is_some())
            .map(|(u, _)| *u)
            .collect()
    }

    fn peer_key_packages(&self, users: &[u64]) -> Vec<KeyPackage> {
        users
            .iter()
            .filter_map(|u| self.peers.get(u)?.key_package.clone())
            .collect()
    }

    /// Welcomes `users` (real clients) with a new transition id.
    fn welcome_peers(&mut self, users: &[u64], welcome: &[u8]) {
        let tid = self.next_tid.wrapping_add(1).max(1);
        self.welcome_peers_with(users, welcome, tid);
    }

    /// Op 30 with transition `tid` to each of `users` (real clients); they are members now.
    fn welcome_peers_with(&mut self, users: &[u64], welcome: &[u8], tid: u16) {
        for user in users {
            if let Some(peer) = self.peers.get_mut(user) {
                let _ = peer.tx.send(binary(30, Some(tid), welcome));
                peer.key_package = None;
                peer.member = true;
            }
        }
    }

    /// The bot's Opus frame as a member decrypts it; `Ok(None)`: not DAVE-encrypted.
    pub(crate) fn open_bot_frame(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, ()> {
        self.retired.retain(|(t, _)| t.elapsed() < OLD_KEYS);
        let marked = payload.len() >= 11 && payload.ends_with(&MAGIC);
        if !marked || (self.version == 0 && self.retired.is_empty()) {
            self.status.bot_frames_plain += 1;
            return Ok(None);
        }
        let bot = self.bot;
        let sessions = self
            .fakes
            .values_mut()
            .filter(|p| p.member)
            .chain(self.retired.iter_mut().map(|(_, p)| p));
        for p in sessions {
            if let Ok(frame) = p.session.decrypt(bot, MediaType::AUDIO, payload) {
                self.status.bot_frames_decrypted += 1;
                return Ok(Some(frame));
            }
        }
        self.status.bot_frames_failed += 1;
        Err(())
    }

    /// A simulated user's Opus frame as their client sends it: DAVE-encrypted once they are
    /// in the group; frames nobody can decrypt for a broken user; otherwise as it is.
    pub(crate) fn seal_user_frame(&mut self, user: u64, opus: &[u8]) -> Vec<u8> {
        if self.version == 0 {
            return opus.to_vec();
        }
        if self.broken.contains(&user) {
            return undecryptable_frame(opus);
        }
        match self.fakes.get_mut(&user) {
            Some(p) if p.session.is_ready() => match p.session.encrypt_opus(opus) {
                Ok(frame) => {
                    self.status.user_frames_encrypted += 1;
                    frame.into_owned()
                }
                Err(_) => opus.to_vec(),
            },
            _ => opus.to_vec(),
        }
    }
}

/// A frame in DAVE's format (ciphertext, 8-byte tag, ULEB128 nonce, supplemental size,
/// marker) under a key no member has: what a client whose key exchange failed sends.
fn undecryptable_frame(opus: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = opus.iter().map(|_| fastrand::u8(..)).collect();
    out.extend((0..8).map(|_| fastrand::u8(..)));
    out.push(0x01); // nonce 1
    out.push(8 + 1 + 1 + 2); // tag, nonce, this byte, marker
    out.extend_from_slice(&MAGIC);
    out
}

/// What DAVE costs per frame, as [`measure_frame_cost`] found it.
#[derive(Debug, Clone, Copy)]
pub struct FrameCost {
    /// Frames encrypted and decrypted.
    pub frames: usize,
    /// Their mean Opus size.
    pub mean_bytes: usize,
    /// Microseconds to encrypt one.
    pub encrypt_us: f64,
    /// Microseconds to decrypt one.
    pub decrypt_us: f64,
    /// Milliseconds to form the group (key package, proposal, commit, welcome).
    pub group_ms: f64,
}

/// Forms a two-member group through this fake's external sender and times `davey`'s
/// encryption (member 1) and decryption (member 2) of `frames`, `rounds` times over.
///
/// # Panics
///
/// When the MLS exchange fails: the fake's DAVE is broken.
pub fn measure_frame_cost(frames: &[Vec<u8>], rounds: usize) -> FrameCost {
    let started = Instant::now();
    let sender = ExternalSenderKey::new();
    let channel: u64 = 99;
    let group = GroupId::from_slice(&channel.to_be_bytes());
    let mut a = Participant::new(1, channel, &sender.package).expect("member 1");
    let b = Participant::new(2, channel, &sender.package).expect("member 2");
    let kp = b.key_package.clone().expect("a key package");
    let mut b = b.session;
    let body = sender
        .proposals(&group, 0, &[], &[kp])
        .expect("an Add proposal");
    let cw = a
        .session
        .process_proposals(ProposalsOperationType::APPEND, &body, None)
        .expect("proposals processed")
        .expect("a commit");
    a.session.process_commit(&cw.commit).expect("own commit");
    b.process_welcome(&cw.welcome.expect("a welcome"))
        .expect("welcomed");
    let group_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut sealed = Vec::with_capacity(frames.len() * rounds);
    let t = Instant::now();
    for _ in 0..rounds {
        for f in frames {
            let frame = a.session.encrypt_opus(f).expect("encrypted");
            sealed.push(frame.into_owned());
        }
    }
    let encrypt_us = t.elapsed().as_secs_f64() * 1e6 / sealed.len().max(1) as f64;
    let t = Instant::now();
    for f in &sealed {
        b.decrypt(1, MediaType::AUDIO, f).expect("decrypted");
    }
    let decrypt_us = t.elapsed().as_secs_f64() * 1e6 / sealed.len().max(1) as f64;
    FrameCost {
        frames: sealed.len(),
        mean_bytes: frames.iter().map(Vec::len).sum::<usize>() / frames.len().max(1),
        encrypt_us,
        decrypt_us,
        group_ms,
    }
}
