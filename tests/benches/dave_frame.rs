//! DAVE's cost per frame: a two-member MLS group formed through the fake Discord's external
//! sender (`fake_discord::dave::measure_frame_cost`), then songbird's client (`davey`)
//! encrypting and decrypting Opus frames of espeak-ng speech, as the bot does for every frame
//! it sends and receives under DAVE. The `discord_voice` bench with `OCV_BENCH_DAVE=1` measures
//! the whole bot.
//!
//! Run: `cargo bench -p openclaw-voice-tests --bench dave_frame`. Results: docs/BENCHMARKS.md,
//! "DAVE".

use openclaw_voice_tests::fake_discord::{audio, dave};

fn main() {
    let speech = audio::speech(
        "Please tell me a story about a brave little dog and a cat.",
        200,
    );
    let frames = audio::opus_frames(&speech);
    let mut best: Option<dave::FrameCost> = None;
    for _ in 0..5 {
        let cost = dave::measure_frame_cost(&frames, 20);
        best = Some(match best {
            Some(b) if b.encrypt_us + b.decrypt_us <= cost.encrypt_us + cost.decrypt_us => b,
            _ => cost,
        });
    }
    let b = best.expect("five runs");
    println!(
        "DAVE per 20 ms frame ({} frames of {} B on average): encrypt {:.2} µs, decrypt {:.2} µs; \
         group of two formed in {:.1} ms",
        b.frames, b.mean_bytes, b.encrypt_us, b.decrypt_us, b.group_ms
    );
    // 50 frames a second per speaker, received (decrypt); the replies are one stream (encrypt).
    println!(
        "per speaking user: {:.4} % of a core to decrypt their audio",
        b.decrypt_us * 50.0 / 1e6 * 100.0
    );
}
