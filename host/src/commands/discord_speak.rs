//! `discord speak` (hidden): a second bot, the smoke test's speaker, joins a voice channel,
//! plays a WAV there and listens for the reply: the voiced audio another user (the bot under
//! test) sends back. Bots cannot type slash commands, so the bot under test must be there by
//! itself (`discord.auto_join_channels`) and hear this one (`discord.heard_bots`);
//! `scripts/discord-smoke` puts it together.
//!
//! It speaks the real protocol through serenity and songbird, DAVE included, with the same
//! songbird configuration and the same output path as the bot. The token comes from a
//! variable (`--token-env`, default `DISCORD_SPEAKER_TOKEN`), never from the command line.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serenity::all::{ChannelId, ClientBuilder, Context, EventHandler, GuildId, Ready};
use songbird::events::{Event, EventContext, EventHandler as VoiceEventHandler};
use songbird::{CoreEvent, SerenityInit, Songbird};
use tokio::sync::mpsc;

use super::load_config;
use crate::cli::{Cli, SpeakArgs};
use crate::pipeline::AudioOutput;
use crate::plugins::Audio;
use crate::telemetry;
use crate::voice::discord::{self, bot, output::CallOutput};
use crate::voice::local::read_wav;

/// A 20 ms frame (48 kHz stereo, as songbird decodes) louder than this RMS counts as voiced.
const VOICED_RMS: f64 = 0.01 * 32_768.0;
/// A reply counts as finished after this much quiet from the listened-to user.
const REPLY_QUIET: Duration = Duration::from_millis(1_500);

/// What the speaker heard, per user: voiced 20 ms frames and the last one.
#[derive(Default)]
struct Heard {
    ssrc_user: HashMap<u32, u64>,
    voiced: HashMap<u64, (u64, Instant)>,
}

struct Listener(Arc<Mutex<Heard>>);

#[serenity::async_trait]
impl VoiceEventHandler for Listener {
    async fn act(&self, ctx: &EventContext<'_>) -> Option<Event> {
        let mut heard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match ctx {
            EventContext::SpeakingStateUpdate(s) => {
                if let Some(user) = s.user_id {
                    heard.ssrc_user.insert(s.ssrc, user.0);
                }
            }
            EventContext::VoiceTick(tick) => {
                for (ssrc, data) in &tick.speaking {
                    let (Some(user), Some(pcm)) =
                        (heard.ssrc_user.get(ssrc).copied(), &data.decoded_voice)
                    else {
                        continue;
                    };
                    if rms(pcm) > VOICED_RMS {
                        let entry = heard.voiced.entry(user).or_insert((0, Instant::now()));
                        *entry = (entry.0 + 1, Instant::now());
                    }
                }
            }
            _ => {}
        }
        None
    }
}

fn rms(pcm: &[i16]) -> f64 {
    let sum: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / pcm.len().max(1) as f64).sqrt()
}

/// READY's news for the command.
struct Readiness(mpsc::UnboundedSender<String>);

#[serenity::async_trait]
impl EventHandler for Readiness {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        let _ = self.0.send(ready.user.name.clone());
    }
}

/// `discord speak`: joins, plays the WAV, waits for the reply; exit 0 when voiced audio came
/// back from the listened-to user, 1 otherwise, each with one line saying what happened.
pub async fn speak(cli: &Cli, args: &SpeakArgs) -> anyhow::Result<ExitCode> {
    let loaded = load_config(cli)?;
    telemetry::init(&loaded);
    let wav = read_wav(&args.wav).with_context(|| format!("reading {}", args.wav.display()))?;
    let mut config = loaded.config.discord.clone();
    config.token_env = args.token_env.clone();
    let token = discord::BotToken::from_env(&config)?;
    let api = discord::Api::new(&config, &token);
    // A bad token said plainly (which variable), not as a gateway failure.
    let (name, id) = api.whoami().await?;
    println!("speak: Discord accepted the speaker bot {name} (id {id})");
    let songbird = Songbird::serenity_from_config(bot::songbird_config());
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let mut client = ClientBuilder::new_with_http(api.http, bot::intents())
        .event_handler(Readiness(ready_tx))
        .register_songbird_with(songbird.clone())
        .await
        .context("starting the speaker's gateway client")?;
    let gateway = tokio::spawn(async move { client.start().await });
    tokio::time::timeout(Duration::from_secs(30), ready_rx.recv())
        .await
        .ok()
        .flatten()
        .context("the speaker bot did not connect to the Discord gateway within 30 s")?;
    println!("speak: connected to the gateway");
    let outcome = converse(&songbird, args, &wav).await;
    let _ = songbird.remove(GuildId::new(args.guild.max(1))).await;
    gateway.abort();
    match outcome {
        Ok(line) => {
            println!("speak: PASS {line}");
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            println!("speak: FAIL {why}");
            Ok(ExitCode::from(crate::cli::exit::FAILURE))
        }
    }
}

/// Joins, plays, listens; what was heard, or why not.
async fn converse(
    songbird: &Arc<Songbird>,
    args: &SpeakArgs,
    wav: &crate::voice::local::WavAudio,
) -> Result<String, String> {
    let (guild, channel) = (
        GuildId::new(args.guild.max(1)),
        ChannelId::new(args.channel.max(1)),
    );
    let call = songbird
        .join(guild, channel)
        .await
        .map_err(|e| format!("cannot join voice channel {}: {e}", args.channel))?;
    let heard = Arc::new(Mutex::new(Heard::default()));
    {
        let mut c = call.lock().await;
        for event in [CoreEvent::SpeakingStateUpdate, CoreEvent::VoiceTick] {
            c.add_global_event(event.into(), Listener(heard.clone()));
        }
    }
    println!(
        "speak: joined {}; playing {}",
        args.channel,
        args.wav.display()
    );
    let mono = mono(wav);
    let output = CallOutput::new(call.clone());
    output.enqueue(&mono, Instant::now());
    tokio::time::sleep(wav.duration()).await;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let now = Instant::now();
        let reply = reply_from(&heard, args.listen_to);
        if let Some((user, frames, last)) = reply {
            if now.duration_since(last) >= REPLY_QUIET || now >= deadline {
                let seconds = frames as f64 * 0.02;
                return Ok(format!(
                    "heard {seconds:.2} s of voiced reply from user {user}"
                ));
            }
        } else if now >= deadline {
            return Err(format!(
                "no voiced reply{} within {} s of speaking",
                args.listen_to
                    .map(|u| format!(" from user {u}"))
                    .unwrap_or_default(),
                args.timeout
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The reply heard so far: the listened-to user's (or the loudest other one's) voiced frames.
fn reply_from(heard: &Mutex<Heard>, listen_to: Option<u64>) -> Option<(u64, u64, Instant)> {
    let heard = heard.lock().unwrap_or_else(|p| p.into_inner());
    heard
        .voiced
        .iter()
        .filter(|(u, _)| listen_to.is_none_or(|l| l == **u))
        .max_by_key(|(_, (frames, _))| *frames)
        .map(|(u, (frames, last))| (*u, *frames, *last))
}

/// The WAV as mono (the channels averaged), as the bot's output path takes it.
fn mono(wav: &crate::voice::local::WavAudio) -> Audio {
    let channels = usize::from(wav.channels.max(1));
    let samples = wav
        .samples
        .chunks(channels)
        .map(|c| (c.iter().map(|&s| i32::from(s)).sum::<i32>() / c.len() as i32) as i16)
        .collect();
    Audio {
        samples,
        sample_rate: wav.sample_rate,
    }
}
