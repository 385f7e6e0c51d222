//! The hearing guard's metrics (`voice_frames_decoded_total`, `voice_undecodable_total`,
//! `voice_unheard_speakers`) and the per-guild count of unheard speakers `/health` reads;
//! the sessions hearing DAVE-encrypted audio and those hearing transport encryption only
//! (`voice_sessions_dave`, `voice_sessions_transport_only`).
//! The Discord sessions feed them through the bot's observer; see `voice::discord::hearing`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use prometheus::{IntCounter, IntGauge};

/// `voice_frames_decoded_total`: received 20 ms frames decoded and handed to the pipeline.
pub(crate) static FRAMES_DECODED: LazyLock<IntCounter> = LazyLock::new(|| {
    IntCounter::new(
        "voice_frames_decoded_total",
        "Received 20 ms voice frames decoded and handed to the pipeline",
    )
    .expect("a valid metric")
});

/// `voice_undecodable_total`: a speaker announced by Discord whose audio never decoded.
pub(crate) static UNDECODABLE: LazyLock<IntCounter> = LazyLock::new(|| {
    IntCounter::new(
        "voice_undecodable_total",
        "Times Discord said someone was speaking but none of their audio decoded",
    )
    .expect("a valid metric")
});

/// `voice_unheard_speakers`: speakers unheard now, all guilds together.
pub(crate) static UNHEARD_SPEAKERS: LazyLock<IntGauge> = LazyLock::new(|| {
    IntGauge::new(
        "voice_unheard_speakers",
        "Speakers Discord says are speaking whose audio does not decode, now",
    )
    .expect("a valid metric")
});

/// `voice_sessions_dave`: sessions whose last heard frame came DAVE-encrypted.
pub(crate) static DAVE_SESSIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    IntGauge::new(
        "voice_sessions_dave",
        "Voice sessions whose last received frame was DAVE end-to-end encrypted",
    )
    .expect("a valid metric")
});

/// `voice_sessions_transport_only`: sessions whose last heard frame had no DAVE layer.
pub(crate) static TRANSPORT_ONLY_SESSIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    IntGauge::new(
        "voice_sessions_transport_only",
        "Voice sessions whose last received frame had transport encryption only (no DAVE)",
    )
    .expect("a valid metric")
});

/// What each guild's received audio is encrypted with; the two gauges count them.
#[derive(Default)]
pub(crate) struct EncryptionByGuild {
    guilds: Mutex<HashMap<u64, bool>>,
}

impl EncryptionByGuild {
    /// `guild` hears DAVE (`Some(true)`), transport only, or nothing known (forgotten).
    pub fn set(&self, guild: u64, dave: Option<bool>) {
        let mut guilds = self.guilds.lock().unwrap_or_else(|p| p.into_inner());
        match dave {
            Some(d) => guilds.insert(guild, d),
            None => guilds.remove(&guild),
        };
        let dave = guilds.values().filter(|d| **d).count();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        DAVE_SESSIONS.set(count(dave));
        TRANSPORT_ONLY_SESSIONS.set(count(guilds.len() - dave));
    }
}

/// Unheard speakers by guild; the gauge is their sum.
#[derive(Default)]
pub(crate) struct UnheardByGuild {
    guilds: Mutex<HashMap<u64, usize>>,
}

impl UnheardByGuild {
    /// `speakers` are unheard in `guild` now (0 forgets the guild).
    pub fn set(&self, guild: u64, speakers: usize) {
        let mut guilds = self.guilds.lock().unwrap_or_else(|p| p.into_inner());
        if speakers == 0 {
            guilds.remove(&guild);
        } else {
            guilds.insert(guild, speakers);
        }
        let total: usize = guilds.values().sum();
        UNHEARD_SPEAKERS.set(i64::try_from(total).unwrap_or(i64::MAX));
    }
}

/// Registers the hearing metrics.
pub fn register(registry: &prometheus::Registry) -> Result<(), prometheus::Error> {
    registry.register(Box::new(FRAMES_DECODED.clone()))?;
    registry.register(Box::new(UNDECODABLE.clone()))?;
    registry.register(Box::new(UNHEARD_SPEAKERS.clone()))?;
    registry.register(Box::new(DAVE_SESSIONS.clone()))?;
    registry.register(Box::new(TRANSPORT_ONLY_SESSIONS.clone()))?;
    Ok(())
}
