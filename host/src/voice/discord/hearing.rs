//! The hearing guard: decoded frames counted per speaker, and the one failure songbird keeps
//! quiet about noticed: Discord says someone is speaking (a Speaking event maps their SSRC),
//! yet none of their audio decodes. Under DAVE, songbird drops every frame it cannot decrypt
//! (a participant whose key exchange failed, a group the bot is not in) without an event or a
//! log line, so without this the bot would sit in the channel, talk, and hear nothing.
//!
//! It also tells whether what it hears came end-to-end encrypted (DAVE) or with transport
//! encryption only, frame by frame ([`dave_frame`]): songbird 0.6.1 keeps its DAVE session
//! private (no event, no accessor, no log line with the protocol version or the epoch), but
//! the frames it hands over still carry DAVE's trailer. The MLS epoch cannot be known this
//! way; docs/DISCORD.md says what songbird change would show it.
//!
//! A pure state machine, the time passed in: the session feeds it from songbird's event task
//! (one short lock, no await) and asks it for `/voice status`, the metrics and `/health`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long after a Speaking event without one decoded frame the speaker counts as unheard.
pub(crate) const UNDECODABLE_AFTER: Duration = Duration::from_secs(2);
/// How long an unheard speaker keeps the session marked deaf without a new Speaking event.
pub(crate) const DEAF_FOR: Duration = Duration::from_secs(60);

/// The magic marker ending every DAVE-encrypted frame (daveprotocol.com, "protocol frame
/// check").
const DAVE_MAGIC_MARKER: [u8; 2] = [0xFA, 0xFA];
/// The shortest DAVE trailer: an 8-byte truncated tag, the supplemental size byte, the marker.
const DAVE_MIN_TRAILER: usize = 11;

/// Whether a received frame came DAVE-encrypted, from what songbird hands over with it: the
/// RTP `packet` (decrypted in place), `payload_end_pad` (bytes after the Opus payload), the
/// transport's `suffix` (AEAD tag and nonce) and whether RTP padding is set. `None`: cannot
/// tell (padding).
///
/// songbird 0.6.1 decrypts a DAVE frame in place and widens `payload_end_pad` over the
/// frame's DAVE trailer, whose bytes stay where they were, ending in the magic marker just
/// before the transport suffix; a frame with transport encryption only has no trailer.
pub fn dave_frame(
    packet: &[u8],
    payload_end_pad: usize,
    suffix: usize,
    padded: bool,
) -> Option<bool> {
    if padded {
        return None;
    }
    let trailer = payload_end_pad.checked_sub(suffix)?;
    if trailer < DAVE_MIN_TRAILER {
        return Some(false);
    }
    let end = packet.len().checked_sub(suffix)?;
    Some(packet.get(end.checked_sub(DAVE_MAGIC_MARKER.len())?..end)? == DAVE_MAGIC_MARKER)
}

/// One speaker, as far as hearing goes.
#[derive(Debug, Default, Clone)]
struct SpeakerHearing {
    /// Frames decoded from them.
    frames: u64,
    /// Their last decoded frame.
    last_frame: Option<Instant>,
    /// Their last Speaking event.
    announced: Option<Instant>,
    /// When they were found unheard (a Speaking event, then no frame for
    /// [`UNDECODABLE_AFTER`]); cleared by their next decoded frame.
    unheard_since: Option<Instant>,
}

/// What `/voice status` and `/health` show.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct HearingSummary {
    /// Frames decoded in this session, everyone together.
    pub frames_decoded: u64,
    /// The last decoded frame, if any.
    pub last_heard: Option<Instant>,
    /// Speakers Discord says are speaking but whose audio does not decode, by user id.
    pub unheard: Vec<u64>,
    /// Times a speaker was found unheard in this session.
    pub incidents: u64,
    /// Whether the last frame heard came DAVE-encrypted; `None` before any.
    pub dave: Option<bool>,
    /// Frames heard DAVE-encrypted, and with transport encryption only.
    pub dave_frames: u64,
    pub transport_frames: u64,
}

/// The guard for one session.
#[derive(Debug, Default)]
pub(crate) struct Hearing {
    speakers: HashMap<u64, SpeakerHearing>,
    incidents: u64,
    dave: Option<bool>,
    dave_frames: u64,
    transport_frames: u64,
}

impl Hearing {
    /// Discord said `user` is speaking (their SSRC mapped).
    pub fn announced(&mut self, user: u64, now: Instant) {
        self.speakers.entry(user).or_default().announced = Some(now);
    }

    /// `frames` decoded frames from `user`.
    pub fn decoded(&mut self, user: u64, frames: u64, now: Instant) {
        let s = self.speakers.entry(user).or_default();
        s.frames += frames;
        s.last_frame = Some(now);
        s.unheard_since = None;
    }

    /// A frame heard DAVE-encrypted (`true`) or with transport encryption only; whether
    /// that changes what the session is heard with.
    pub fn encryption(&mut self, dave: bool) -> bool {
        match dave {
            true => self.dave_frames += 1,
            false => self.transport_frames += 1,
        }
        self.dave.replace(dave) != Some(dave)
    }

    /// `user` left.
    pub fn left(&mut self, user: u64) {
        self.speakers.remove(&user);
    }

    /// Finds speakers newly unheard; returns them (each once per Speaking event).
    pub fn check(&mut self, now: Instant) -> Vec<u64> {
        let mut found = Vec::new();
        for (user, s) in &mut self.speakers {
            let Some(announced) = s.announced else {
                continue;
            };
            let heard_since = s.last_frame.is_some_and(|f| f >= announced);
            if !heard_since
                && s.unheard_since.is_none_or(|u| u < announced)
                && now.duration_since(announced) >= UNDECODABLE_AFTER
            {
                s.unheard_since = Some(now);
                found.push(*user);
            }
        }
        self.incidents += found.len() as u64;
        found
    }

    /// How many speakers are unheard now (no allocation: called every tick).
    pub(crate) fn unheard_count(&self, now: Instant) -> usize {
        self.speakers
            .values()
            .filter(|s| {
                s.unheard_since.is_some()
                    && s.announced
                        .is_some_and(|a| now.duration_since(a) < DEAF_FOR)
            })
            .count()
    }

    /// The session's figures.
    pub fn summary(&self, now: Instant) -> HearingSummary {
        let mut unheard: Vec<u64> = self
            .speakers
            .iter()
            .filter(|(_, s)| {
                s.unheard_since.is_some()
                    && s.announced
                        .is_some_and(|a| now.duration_since(a) < DEAF_FOR)
            })
            .map(|(u, _)| *u)
            .collect();
        unheard.sort_unstable();
        HearingSummary {
            frames_decoded: self.speakers.values().map(|s| s.frames).sum(),
            last_heard: self.speakers.values().filter_map(|s| s.last_frame).max(),
            unheard,
            incidents: self.incidents,
            dave: self.dave,
            dave_frames: self.dave_frames,
            transport_frames: self.transport_frames,
        }
    }
}

impl HearingSummary {
    /// The `/voice status` line; `name` gives a user's display name.
    pub(crate) fn status_line(&self, now: Instant, name: impl Fn(u64) -> String) -> String {
        let last = match self.last_heard {
            Some(at) => format!("last heard {} s ago", now.duration_since(at).as_secs()),
            None => "nothing heard yet".to_string(),
        };
        let mut line = format!("Hearing: {} frames decoded, {last}", self.frames_decoded);
        if !self.unheard.is_empty() {
            let names: Vec<String> = self.unheard.iter().map(|u| name(*u)).collect();
            line.push_str(&format!(
                " · ⚠ cannot hear {}: Discord says they speak but their audio does not decode \
                 (end-to-end encryption keys missing?)",
                names.join(", ")
            ));
        }
        line
    }

    /// The `/voice status` line on encryption, from the frames heard.
    pub(crate) fn encryption_line(&self) -> String {
        let mode = match self.dave {
            None => "not known until someone is heard",
            Some(true) => "DAVE end-to-end",
            Some(false) => "transport only (no DAVE)",
        };
        format!(
            "Encryption: {mode} · frames heard: {} DAVE, {} transport only (the DAVE epoch is \
             not exposed by songbird 0.6.1)",
            self.dave_frames, self.transport_frames
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_speaker_whose_audio_decodes_is_never_unheard() {
        let t0 = Instant::now();
        let mut h = Hearing::default();
        h.announced(1, t0);
        h.decoded(1, 1, t0 + Duration::from_millis(40));
        assert!(h.check(t0 + Duration::from_secs(5)).is_empty());
        let s = h.summary(t0 + Duration::from_secs(5));
        assert_eq!(s.frames_decoded, 1);
        assert!(s.unheard.is_empty());
    }

    #[test]
    fn speaking_without_decoded_audio_is_reported_once_then_cleared_by_audio() {
        let t0 = Instant::now();
        let mut h = Hearing::default();
        h.announced(7, t0);
        assert!(h.check(t0 + Duration::from_secs(1)).is_empty(), "too early");
        assert_eq!(h.check(t0 + UNDECODABLE_AFTER), [7]);
        assert!(
            h.check(t0 + Duration::from_secs(3)).is_empty(),
            "reported once"
        );
        assert_eq!(h.summary(t0 + Duration::from_secs(3)).unheard, [7]);
        // A new Speaking event, still nothing: a second incident.
        h.announced(7, t0 + Duration::from_secs(10));
        assert_eq!(h.check(t0 + Duration::from_secs(13)), [7]);
        assert_eq!(h.summary(t0 + Duration::from_secs(13)).incidents, 2);
        // Audio decodes again: heard.
        h.decoded(7, 1, t0 + Duration::from_secs(14));
        assert!(h.summary(t0 + Duration::from_secs(14)).unheard.is_empty());
        // An old incident stops counting after DEAF_FOR.
        h.announced(7, t0 + Duration::from_secs(20));
        assert_eq!(h.check(t0 + Duration::from_secs(23)), [7]);
        assert!(h
            .summary(t0 + Duration::from_secs(20) + DEAF_FOR)
            .unheard
            .is_empty());
    }

    #[test]
    fn the_status_line_names_who_cannot_be_heard() {
        let t0 = Instant::now();
        let mut h = Hearing::default();
        h.decoded(1, 250, t0);
        h.announced(2, t0);
        h.check(t0 + Duration::from_secs(3));
        let line = h
            .summary(t0 + Duration::from_secs(3))
            .status_line(t0 + Duration::from_secs(3), |u| format!("user{u}"));
        assert!(
            line.starts_with("Hearing: 250 frames decoded, last heard 3 s ago"),
            "{line}"
        );
        assert!(line.contains("⚠ cannot hear user2"), "{line}");
    }

    /// An RTP packet as songbird hands it over: 12-byte header, the decrypted Opus payload,
    /// the DAVE trailer left in place (when DAVE), the 20-byte transport suffix.
    fn packet(opus: &[u8], dave: bool) -> (Vec<u8>, usize) {
        let mut p = vec![0x80, 0x78, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        p.extend_from_slice(opus);
        let mut pad = 20;
        if dave {
            // Truncated tag, a nonce byte, supplemental size, marker.
            let trailer = [1, 2, 3, 4, 5, 6, 7, 8, 0x01, 12, 0xFA, 0xFA];
            p.extend_from_slice(&trailer);
            pad += trailer.len();
        }
        p.extend_from_slice(&[0xAB; 20]);
        (p, pad)
    }

    #[test]
    fn dave_frames_are_told_from_transport_only_ones() {
        let (p, pad) = packet(&[0xF8, 0xFF, 0xFE], true);
        assert_eq!(dave_frame(&p, pad, 20, false), Some(true));
        // Opus bytes that happen to end in the marker: no trailer, no DAVE.
        let (p, pad) = packet(&[0xF8, 0xFA, 0xFA], false);
        assert_eq!(dave_frame(&p, pad, 20, false), Some(false));
        // A trailer-sized end without the marker is not DAVE either.
        let (mut p, pad) = packet(&[0xF8], true);
        let at = p.len() - 21;
        p[at] = 0;
        assert_eq!(dave_frame(&p, pad, 20, false), Some(false));
        assert_eq!(dave_frame(&p, pad, 20, true), None, "padding: cannot tell");
        assert_eq!(dave_frame(&[0; 4], 40, 20, false), None, "short packet");
    }

    #[test]
    fn the_encryption_line_follows_the_last_frame() {
        let mut h = Hearing::default();
        assert!(h
            .summary(Instant::now())
            .encryption_line()
            .contains("not known"));
        assert!(h.encryption(false), "a first frame changes it");
        assert!(!h.encryption(false));
        assert!(h.encryption(true), "an upgrade");
        let line = h.summary(Instant::now()).encryption_line();
        assert!(
            line.starts_with("Encryption: DAVE end-to-end · frames heard: 1 DAVE, 2 transport"),
            "{line}"
        );
    }

    #[test]
    fn audio_from_before_the_speaking_event_does_not_count_as_heard() {
        let t0 = Instant::now();
        let mut h = Hearing::default();
        h.decoded(3, 50, t0);
        h.announced(3, t0 + Duration::from_secs(30));
        assert_eq!(h.check(t0 + Duration::from_secs(33)), [3]);
        h.left(3);
        assert!(h.summary(t0 + Duration::from_secs(33)).unheard.is_empty());
    }
}
