//! The hearing guard's metrics (`voice_frames_decoded_total`, `voice_undecodable_total`,
//! `voice_unheard_speakers`) and the per-guild count of unheard speakers `/health` reads.
//! The Discord sessions feed them through the bot's observer; see `voice::discord::hearing`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use prometheus::{IntCounter, IntGauge};

/// `voice_frames_decoded_total`: received 20 ms frames decoded and handed to the pipeline.
pub static FRAMES_DECODED: LazyLock<IntCounter> = LazyLock::new(|| {
    IntCounter::new(
        "voice_frames_decoded_total",
        "Received 20 ms voice frames decoded and handed to the pipeline",
    )
    .expect("a valid metric")
});

/// `voice_undecodable_total`: a speaker announced by Discord whose audio never decoded.
pub static UNDECODABLE: LazyLock<IntCounter> = LazyLock::new(|| {
    IntCounter::new(
        "voice_undecodable_total",
        "Times Discord said someone was speaking but none of their audio decoded",
    )
    .expect("a valid metric")
});

/// `voice_unheard_speakers`: speakers unheard now, all guilds together.
pub static UNHEARD_SPEAKERS: LazyLock<IntGauge> = LazyLock::new(|| {
    IntGauge::new(
        "voice_unheard_speakers",
        "Speakers Discord says are speaking whose audio does not decode, now",
    )
    .expect("a valid metric")
});

/// Unheard speakers by guild; the gauge is their sum.
#[derive(Default)]
pub struct UnheardByGuild {
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
    Ok(())
}
