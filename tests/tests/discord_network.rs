//! Speech over a bad network: the fake Discord's RTP from a simulated user suffers 5% loss and
//! 20 ms jitter (with some reordering), under DAVE, and the real bot (songbird's jitter
//! buffer, Opus concealment, the pipeline) must transcribe the same questions about as well as
//! on a clean network: word error rate within 0.05 of the loss-free run.
//!
//! songbird 0.6.1 conceals a lost packet with 1920 samples, which at the 16 kHz mono it
//! decodes for us is 120 ms of invented audio instead of 20 ms; the bot keeps one frame's
//! worth (see `voice::discord::session`). This test is what shows whether that matters.

mod discord_harness;

use std::time::Duration;

use discord_harness::{transcript_config, Bot, Stack};
use openclaw_voice_tests::fake_discord::{
    audio, NetworkConditions, SayOptions, ALICE, BOT_ID, GUILD_ID,
};
use openclaw_voice_tests::wer::word_error_rate;

/// Questions of the kind people ask (not the phrases the other tests tune on).
const QUESTIONS: [&str; 4] = [
    "What time is it in London?",
    "How tall is the Eiffel Tower?",
    "Please tell me a story about a brave little dog.",
    "What is the capital city of Australia?",
];

/// Asks every question as Alice; the transcripts, in order.
fn ask_all(bot: &Bot, posted_before: usize) -> Vec<String> {
    let mut heard = Vec::new();
    for (i, q) in QUESTIONS.iter().enumerate() {
        let before = bot.fake.bot_audio(GUILD_ID).packets;
        bot.fake.say(
            GUILD_ID,
            ALICE,
            &audio::speech(q, 1_000),
            SayOptions::default(),
        );
        let posts = bot.wait_transcripts(posted_before + i + 1);
        bot.wait_spoken_reply(before);
        let post = &posts[posted_before + i];
        let said = post
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("**Alice**: "))
            .unwrap_or_else(|| panic!("not Alice's words: {post:?}"));
        heard.push(said.to_string());
    }
    heard
}

#[test]
fn five_percent_loss_and_20_ms_jitter_keep_the_word_error_rate_within_0_05() {
    let bot = Bot::start_with(Stack::Offline, &transcript_config(), 1);
    bot.fake.set_dave_version(1);
    bot.join_lounge(ALICE);
    let grouped = bot.fake.wait_for(Duration::from_secs(30), |w| {
        let s = w.dave_status(GUILD_ID)?;
        (s.members.contains(&BOT_ID) && s.transitions >= 1).then_some(())
    });
    assert!(grouped.is_some(), "{:?}", bot.fake.dave_status(GUILD_ID));

    let clean = ask_all(&bot, 0);
    bot.fake.set_network(NetworkConditions {
        loss: 0.05,
        jitter_ms: 20,
        reorder: 0.02,
        seed: 13,
    });
    let lossy = ask_all(&bot, QUESTIONS.len());
    let lost = bot.fake.world(|w| w.packets_lost);
    let wer_clean = word_error_rate(
        QUESTIONS
            .iter()
            .copied()
            .zip(clean.iter().map(String::as_str)),
    );
    let wer_lossy = word_error_rate(
        QUESTIONS
            .iter()
            .copied()
            .zip(lossy.iter().map(String::as_str)),
    );
    eprintln!(
        "WER clean {wer_clean:.3}, with 5% loss and 20 ms jitter {wer_lossy:.3} \
         ({lost} packets lost)\nclean: {clean:?}\nlossy: {lossy:?}"
    );
    assert!(lost > 10, "the network lost only {lost} packets");
    assert!(
        wer_lossy <= wer_clean + 0.05,
        "WER {wer_lossy:.3} with loss and jitter, {wer_clean:.3} without\n{clean:?}\n{lossy:?}"
    );
    bot.stop();
}
