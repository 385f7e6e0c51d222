//! `simulate`: WAV files fed as speakers through the real pipeline, in real time or as fast
//! as possible, the bot's replies recorded to a WAV, each turn printed (or as JSON), and the
//! ops server serving throughout (and after, with `--serve`).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::load_config;
use super::serving::{drain_session, Serving};
use crate::cli::{Cli, SimulateArgs, UsageError};
use crate::ops::OpsState;
use crate::pipeline::{FrameRouter, Playback, Speaker, TurnOutcome, TurnReport, VoiceSession};
use crate::telemetry;
use crate::voice::local::{read_wav, WavAudio, WavRecorder};

/// Sample rate of the simulation's output WAV.
const OUTPUT_RATE: u32 = 24_000;
/// Frame length fed to the pipeline, as Discord sends it.
const FRAME_MS: u64 = 20;

/// One `--input` of `simulate`, with its speaker and start time.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulateInput {
    /// The WAV file.
    pub path: PathBuf,
    /// Who says it.
    pub speaker: String,
    /// When it starts, in ms from the start of the simulation.
    pub at_ms: u64,
}

/// Pairs each `--speaker` and `--at` with the `--input` before it on the command line.
pub fn simulate_inputs(
    matches: &clap::ArgMatches,
    args: &SimulateArgs,
) -> anyhow::Result<Vec<SimulateInput>> {
    let sub = matches
        .subcommand_matches("simulate")
        .context("simulate arguments missing")?;
    let input_idx: Vec<usize> = sub
        .indices_of("inputs")
        .map(|i| i.collect())
        .unwrap_or_default();
    let mut out: Vec<SimulateInput> = args
        .inputs
        .iter()
        .enumerate()
        .map(|(n, path)| SimulateInput {
            path: path.clone(),
            speaker: format!("speaker{}", n + 1),
            at_ms: 0,
        })
        .collect();
    let owner = |idx: usize, flag: &str| -> anyhow::Result<usize> {
        input_idx
            .iter()
            .rposition(|&i| i < idx)
            .ok_or_else(|| usage(format!("`{flag}` must follow the `--input` it belongs to")))
    };
    if let Some(idx) = sub.indices_of("speakers") {
        for (idx, name) in idx.zip(args.speakers.iter()) {
            let n = owner(idx, "--speaker")?;
            out[n].speaker = name.clone();
        }
    }
    if let Some(idx) = sub.indices_of("at") {
        for (idx, at) in idx.zip(args.at.iter()) {
            let n = owner(idx, "--at")?;
            out[n].at_ms = *at;
        }
    }
    check_output(&args.output, &out)?;
    Ok(out)
}

fn usage(message: String) -> anyhow::Error {
    UsageError(message).into()
}

/// `--output` is checked before anything runs: its directory exists, it is not a directory,
/// and it is none of the `--input` files (which it would overwrite).
fn check_output(output: &Path, inputs: &[SimulateInput]) -> anyhow::Result<()> {
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(usage(format!(
            "`--output {}`: the directory {} does not exist",
            output.display(),
            parent.display()
        )));
    }
    if output.is_dir() {
        return Err(usage(format!(
            "`--output {}` is a directory; give a .wav file name",
            output.display()
        )));
    }
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if let Some(input) = inputs.iter().find(|i| same(&i.path, output)) {
        return Err(usage(format!(
            "`--output {}` is also an `--input` ({}): it would be overwritten; write the \
             replies to another file",
            output.display(),
            input.path.display()
        )));
    }
    Ok(())
}

/// `simulate`.
pub async fn simulate(
    cli: &Cli,
    args: &SimulateArgs,
    inputs: Vec<SimulateInput>,
) -> anyhow::Result<ExitCode> {
    let loaded = load_config(cli)?;
    telemetry::init(&loaded);
    // Read every input first: a bad file is reported before anything slow happens.
    let audio = inputs
        .iter()
        .map(|input| read_wav(&input.path))
        .collect::<Result<Vec<_>, _>>()?;
    if args.serve && !loaded.config.ops.enabled {
        anyhow::bail!(
            "`--serve` keeps the ops server running, but it is off (`ops.enabled = false`); \
             turn it on with OPENCLAW__OPS__ENABLED=true"
        );
    }
    let serving = Serving::start(&loaded).await?;
    let Some(deps) = serving.session_deps(&loaded, args.serve).await? else {
        serving.finish().await;
        return Ok(ExitCode::SUCCESS);
    };
    // Enough silence after the last input for any rule to end the turn.
    let pl = &deps.config;
    let hangover = u64::from(pl.silence_hangover_ms.max(pl.turn_incomplete_silence_ms));
    let recorder = Arc::new(WavRecorder::new(OUTPUT_RATE));
    let playback = Arc::new(Playback::new(recorder.clone(), !args.fast));
    let (router, mut session) =
        VoiceSession::start(deps, "simulation".to_string(), playback.clone());
    let connection = serving.ops.voice_connection();
    let (_, no_reports) = tokio::sync::mpsc::unbounded_channel();
    let mut reports = std::mem::replace(&mut session.reports, no_reports);
    let feed = Feed::new(&inputs, audio, hangover);

    let turns = Tally::default();
    {
        let printer = async {
            while let Some(report) = reports.recv().await {
                turns.report(&serving.ops, &report, args.json);
            }
        };
        let work = async {
            tokio::join!(feed.run(router, args.fast, &serving), printer);
        };
        tokio::pin!(work);
        let finished = tokio::select! {
            () = &mut work => true,
            () = serving.shutdown.requested() => false,
        };
        if !finished {
            drain_session(
                &mut work,
                &session,
                &playback,
                &serving.ops,
                &serving.shutdown,
            )
            .await;
        }
    }
    finish_playback(session, &playback, &serving).await;
    drop(connection);
    let written = recorder.write(&args.output)?;
    turns.print_summary(args, written);
    print_resources(&serving.ops, args.json);
    serve_on(args, &serving).await;
    serving.finish().await;
    Ok(if turns.failed.get() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Waits for the session to end and the last reply to finish playing (or stops it at a
/// shutdown request), within the shutdown deadline.
async fn finish_playback(session: VoiceSession, playback: &Playback, serving: &Serving) {
    let shutdown = &serving.shutdown;
    if tokio::time::timeout(shutdown.remaining(), session.join())
        .await
        .is_err()
    {
        tracing::warn!("the voice session did not end by the shutdown deadline");
    }
    if shutdown.is_requested() {
        // Leave the channel: nothing more is played.
        playback.stop();
    } else if let Some(end) = playback.ends_at() {
        tokio::select! {
            () = tokio::time::sleep_until(end.into()) => {}
            () = shutdown.requested() => {
                playback.stop();
            }
        }
    }
}

/// `--serve`: keeps the ops server up after the conversation, until SIGTERM/SIGINT.
async fn serve_on(args: &SimulateArgs, serving: &Serving) {
    if !args.serve || serving.shutdown.is_requested() {
        return;
    }
    if let Some(server) = &serving.server {
        eprintln!(
            "serving http://{} until SIGTERM/SIGINT",
            server.local_addr()
        );
    }
    serving.shutdown.requested().await;
}

/// Turns counted as their reports arrive.
#[derive(Default)]
struct Tally {
    turns: Cell<usize>,
    failed: Cell<usize>,
}

impl Tally {
    /// The last line: how many turns, and where the bot's speech went (not with `--json`).
    fn print_summary(&self, args: &SimulateArgs, written: Duration) {
        let turns = self.turns.get();
        if !args.json {
            println!(
                "{turns} turn{}; the bot's speech ({:.1} s) is in {}",
                if turns == 1 { "" } else { "s" },
                written.as_secs_f64(),
                args.output.display()
            );
        }
    }

    /// Counts and prints one report (a no-speech report is a note, not a turn).
    fn report(&self, ops: &OpsState, report: &TurnReport, json: bool) {
        ops.observe_turn(report);
        if report.outcome == TurnOutcome::Continued {
            eprintln!(
                "({} went on speaking: the turn that ended after {} ms of audio continues in the \
                 next one{})",
                report.speaker.name,
                report.utterance_ms,
                match report.reply_played_ms {
                    Some(ms) => format!(", its reply stopped after {ms} ms"),
                    None => String::new(),
                }
            );
            return;
        }
        if !report.is_turn() {
            eprintln!(
                "(no speech recognised from {}: {} ms of audio ignored)",
                report.speaker.name, report.utterance_ms
            );
            return;
        }
        self.turns.set(self.turns.get() + 1);
        if matches!(report.outcome, TurnOutcome::Failed(_)) {
            self.failed.set(self.failed.get() + 1);
        }
        print_turn(self.turns.get(), report, json);
    }
}

/// The speakers and their audio, fed frame by frame.
struct Feed<'a> {
    inputs: &'a [SimulateInput],
    audio: Vec<WavAudio>,
    speakers: Vec<Speaker>,
    /// When feeding stops, in ms: the last input's end plus enough silence to end its turn.
    end_ms: u64,
}

impl<'a> Feed<'a> {
    fn new(inputs: &'a [SimulateInput], audio: Vec<WavAudio>, hangover: u64) -> Self {
        let speakers = inputs
            .iter()
            .map(|i| Speaker {
                id: i.speaker.clone(),
                name: i.speaker.clone(),
            })
            .collect();
        let end_ms = inputs
            .iter()
            .zip(&audio)
            .map(|(i, a)| i.at_ms + a.duration().as_millis() as u64)
            .max()
            .unwrap_or(0)
            + hangover
            + 200;
        Feed {
            inputs,
            audio,
            speakers,
            end_ms,
        }
    }

    /// Feeds frames: in real time unless `fast`; speakers who have started and fallen silent
    /// get silence frames, as Discord reports them. A shutdown request stops it, and no new
    /// turn starts after one (speech in progress is dropped).
    async fn run(&self, mut router: FrameRouter, fast: bool, serving: &Serving) {
        let shutdown = &serving.shutdown;
        let start = tokio::time::Instant::now();
        let mut t = 0u64;
        let mut scratch: Vec<i16> = Vec::new();
        while t < self.end_ms && !shutdown.is_requested() {
            if !fast {
                tokio::select! {
                    () = tokio::time::sleep_until(start + Duration::from_millis(t)) => {}
                    () = shutdown.requested() => break,
                }
            } else {
                // Model time is not simulated time: each verdict lands in the frame after
                // the pause it was asked at.
                router.settle().await;
                if t.is_multiple_of(1_000) {
                    tokio::task::yield_now().await;
                }
            }
            let now = Instant::now();
            for ((input, wav), speaker) in self.inputs.iter().zip(&self.audio).zip(&self.speakers) {
                if t >= input.at_ms {
                    let frame = wav.frame_at(t - input.at_ms, FRAME_MS, &mut scratch);
                    router.push(speaker, frame, wav.channels, wav.sample_rate, now);
                }
            }
            t += FRAME_MS;
        }
        if !shutdown.is_requested() {
            router.flush(Instant::now());
        }
    }
}

/// The process's peak resident set size (Linux `VmHWM`), in KiB.
pub fn peak_rss_kb() -> Option<u64> {
    peak_rss_kb_of("self")
}

/// Prints the peak memory and the CPU time of this process and of the worker processes
/// serving its providers (a model loaded in a worker is counted there); on stderr with
/// `--json`, whose stdout holds only turns.
fn print_resources(ops: &OpsState, json: bool) {
    let Some(host) = peak_rss_kb() else { return };
    let pids: Vec<String> = {
        let components = ops.components();
        let stt = components.stt.iter().filter_map(|p| p.worker());
        let tts = components.tts.iter().filter_map(|p| p.worker());
        stt.chain(tts)
            .filter_map(|w| w.pid)
            .map(|pid| pid.to_string())
            .collect()
    };
    let workers: u64 = pids.iter().filter_map(|pid| peak_rss_kb_of(pid)).sum();
    let worker_cpu: f64 = pids.iter().filter_map(|pid| cpu_seconds_of(pid)).sum();
    let host_cpu = cpu_seconds_of("self").unwrap_or(0.0);
    let mb = |kb: u64| kb as f64 / 1024.0;
    let lines = if pids.is_empty() {
        format!(
            "peak memory (RSS): {:.1} MB\nCPU time: {host_cpu:.2} s",
            mb(host)
        )
    } else {
        let plural = if pids.len() == 1 { "" } else { "es" };
        format!(
            "peak memory (RSS): {:.1} MB (host {:.1} MB, {n} worker process{plural} {:.1} MB)\n\
             CPU time: {:.2} s (host {host_cpu:.2} s, worker{s} {worker_cpu:.2} s)",
            mb(host + workers),
            mb(host),
            mb(workers),
            host_cpu + worker_cpu,
            n = pids.len(),
            s = if pids.len() == 1 { "" } else { "s" },
        )
    };
    if json {
        eprintln!("{lines}");
    } else {
        println!("{lines}");
    }
}

/// User and system CPU time of process `pid` (`self` or a number) so far, in seconds.
fn cpu_seconds_of(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (in parentheses, may hold spaces): state is the first field,
    // utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks / hz as f64)
}

/// Peak resident memory of process `pid` (`self` or a number), in kB.
fn peak_rss_kb_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// How a turn ended, as `simulate` prints it.
fn outcome_words(outcome: &TurnOutcome) -> String {
    match outcome {
        TurnOutcome::Completed => "completed".to_string(),
        TurnOutcome::Interrupted => "interrupted (barge-in)".to_string(),
        TurnOutcome::Failed(why) => format!("FAILED: {}", telemetry::scrub(why)),
        TurnOutcome::Cancelled => "cancelled".to_string(),
        TurnOutcome::NotAddressed => "not addressed to the bot".to_string(),
        TurnOutcome::NoSpeech => "no speech".to_string(),
        TurnOutcome::Continued => "continued by the next turn".to_string(),
    }
}

fn print_turn(n: usize, report: &TurnReport, json: bool) {
    let ms = report.timeline.ms();
    if json {
        let value = serde_json::json!({
            "turn": n,
            "speaker": report.speaker.name,
            "transcript": report.transcript,
            "reply": report.reply,
            "outcome": report.outcome,
            "timeline_ms": ms,
            "utterance_ms": report.utterance_ms,
            "reply_audio_ms": report.reply_audio_ms,
            "stt_provider": report.stt_provider,
            "tts_provider": report.tts_provider,
            "end_rule": report.end_rule,
            "ended_by": report.end_rule.to_string(),
            "speculation": report.speculation,
            "continued": report.continued,
            "errors": report.errors.iter().map(|e| telemetry::scrub(e)).collect::<Vec<_>>(),
        });
        println!("{value}");
        return;
    }
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
    println!(
        "turn {n} · {} ({:.1} s of speech)",
        report.speaker.name,
        report.utterance_ms as f64 / 1000.0
    );
    let continued = if report.continued {
        " (the speaker went on: it continues the turn before)"
    } else {
        ""
    };
    println!("  heard:  {:?}{continued}", report.transcript);
    println!("  reply:  {:?}", report.reply);
    println!(
        "  outcome: {} · stt {} · tts {}",
        outcome_words(&report.outcome),
        report.stt_provider.as_deref().unwrap_or("-"),
        report.tts_provider.as_deref().unwrap_or("-")
    );
    println!(
        "  timeline (ms after end of speech): endpoint {:.0} · stt done {} · first token {} · first audio {} · playback {}",
        ms.endpoint_detected,
        opt(ms.stt_done),
        opt(ms.agent_first_token),
        opt(ms.first_tts_audio),
        opt(ms.playback_start)
    );
    // The headline is what the user feels (as Prometheus's response_latency_seconds), then
    // its two parts: waiting to be sure the turn ended, and the work after that.
    println!(
        "  response (end of speech → first audio): {} ms = end-of-turn wait {:.0} + processing {}",
        opt(ms.first_tts_audio),
        ms.endpoint_detected,
        opt(ms.voice_to_voice)
    );
    println!(
        "  ended by: {} · speculative stt: {}, {} thrown away ({} before they ran)",
        report.end_rule,
        match (report.speculation.streamed, report.speculation.used) {
            (true, _) => "streamed at each pause",
            (false, true) => "used",
            (false, false) => "not used",
        },
        report.speculation.wasted,
        report.speculation.skipped
    );
    for e in &report.errors {
        println!("  error: {}", telemetry::scrub(e));
    }
}
