//! The hearing guard: decoded frames counted per speaker, and the one failure songbird keeps
//! quiet about noticed: Discord says someone is speaking (a Speaking event maps their SSRC),
//! yet none of their audio decodes. Under DAVE, songbird drops every frame it cannot decrypt
//! (a participant whose key exchange failed, a group the bot is not in) without an event or a
//! log line, so without this the bot would sit in the channel, talk, and hear nothing.
//!
//! A pure state machine, the time passed in: the session feeds it from songbird's event task
//! (one short lock, no await) and asks it for `/voice status`, the metrics and `/health`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long after a Speaking event without one decoded frame the speaker counts as unheard.
pub const UNDECODABLE_AFTER: Duration = Duration::from_secs(2);
/// How long an unheard speaker keeps the session marked deaf without a new Speaking event.
pub const DEAF_FOR: Duration = Duration::from_secs(60);

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
pub struct HearingSummary {
    /// Frames decoded in this session, everyone together.
    pub frames_decoded: u64,
    /// The last decoded frame, if any.
    pub last_heard: Option<Instant>,
    /// Speakers Discord says are speaking but whose audio does not decode, by user id.
    pub unheard: Vec<u64>,
    /// Times a speaker was found unheard in this session.
    pub incidents: u64,
}

/// The guard for one session.
#[derive(Debug, Default)]
pub struct Hearing {
    speakers: HashMap<u64, SpeakerHearing>,
    incidents: u64,
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
    pub fn unheard_count(&self, now: Instant) -> usize {
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
        }
    }
}

impl HearingSummary {
    /// The `/voice status` line; `name` gives a user's display name.
    pub fn status_line(&self, now: Instant, name: impl Fn(u64) -> String) -> String {
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
