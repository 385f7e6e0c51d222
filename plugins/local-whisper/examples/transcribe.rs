//! Transcribes 16 kHz mono 16-bit WAV files with the built `local-whisper` plugin, loaded as the
//! host loads it (the cdylib, through abi_stable), and prints one JSON line per file with the
//! text and the time each transcription took. `bench/stt/bench.py` drives it.
//!
//! ```text
//! cargo build --release -p openclaw-plugin-local-whisper --example transcribe
//! target/release/examples/transcribe [--settings TOML] [--repeat N] [--plugin PATH] FILE.wav...
//! ```
//!
//! `--settings` is the provider's settings as TOML text (e.g. `'threads = 2'`); `--repeat`
//! transcribes each file N times (the first run is reported separately as `first_ms`, the
//! medians of wall time and of process CPU time leave it out);
//! `--plugin` is the path of the plugin library (default: beside this binary's directory).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use plugin_api::abi::{
    HostContext, LogLevel, Pcm16kMono, PluginModule_Ref, TranscribeOptions, STT_SAMPLE_RATE,
};
use plugin_api::abi_stable::library::RootModule;
use plugin_api::abi_stable::std_types::RStr;

struct Args {
    settings: String,
    repeat: usize,
    plugin: Option<PathBuf>,
    verbose: bool,
    files: Vec<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        settings: String::new(),
        repeat: 1,
        plugin: None,
        verbose: false,
        files: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--settings" => args.settings = it.next().ok_or("--settings needs a value")?,
            "--repeat" => {
                let value = it.next().ok_or("--repeat needs a value")?;
                args.repeat = value
                    .parse()
                    .map_err(|_| format!("--repeat: `{value}` is not a count"))?;
                args.repeat = args.repeat.max(1);
            }
            "--plugin" => args.plugin = Some(it.next().ok_or("--plugin needs a path")?.into()),
            "--verbose" | "-v" => args.verbose = true,
            "--help" | "-h" => return Err(String::new()),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            file => args.files.push(file.into()),
        }
    }
    if args.files.is_empty() {
        return Err("no WAV files given".into());
    }
    Ok(args)
}

extern "C" fn quiet_log(_: LogLevel, _: RStr<'_>, _: RStr<'_>, _: RStr<'_>) {}

extern "C" fn print_log(level: LogLevel, plugin: RStr<'_>, target: RStr<'_>, message: RStr<'_>) {
    eprintln!("[{level:?} {plugin} {target}] {message}");
}

fn default_plugin() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    // target/<profile>/examples/transcribe -> target/<profile>/lib…so
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot find the target directory")?;
    Ok(dir.join(format!(
        "{}openclaw_plugin_local_whisper{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )))
}

/// CPU time used by this process so far (all threads), in milliseconds: unlike wall time it
/// does not grow when other processes compete for the cores.
fn cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn read_wav(path: &Path) -> Result<Vec<i16>, String> {
    let reader = hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let spec = reader.spec();
    if spec.sample_rate != STT_SAMPLE_RATE || spec.channels != 1 || spec.bits_per_sample != 16 {
        return Err(format!(
            "{}: need 16 kHz mono 16-bit, got {} Hz, {} channels, {} bits",
            path.display(),
            spec.sample_rate,
            spec.channels,
            spec.bits_per_sample
        ));
    }
    reader
        .into_samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn run(args: Args) -> Result<(), String> {
    let plugin = match args.plugin {
        Some(path) => path,
        None => default_plugin()?,
    };
    let module = PluginModule_Ref::load_from_file(&plugin)
        .map_err(|e| format!("cannot load {}: {e}", plugin.display()))?;
    module.init()(HostContext {
        log: if args.verbose { print_log } else { quiet_log },
        max_level: if args.verbose {
            LogLevel::Debug
        } else {
            LogLevel::Error
        },
    });
    let started = Instant::now();
    let stt = module.new_stt()(RStr::from_str(&args.settings))
        .into_result()
        .map_err(|e| format!("cannot build the provider: {e}"))?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    println!(
        "{}",
        serde_json::json!({ "event": "loaded", "load_ms": load_ms, "settings": args.settings })
    );
    let options = TranscribeOptions::default();
    for file in &args.files {
        let samples = read_wav(file)?;
        let mut times = Vec::with_capacity(args.repeat);
        let mut cpu_times = Vec::with_capacity(args.repeat);
        let mut text = String::new();
        for _ in 0..args.repeat {
            let cpu_before = cpu_ms();
            let started = Instant::now();
            let transcript = stt
                .transcribe(Pcm16kMono::new(&samples), &options)
                .into_result()
                .map_err(|e| format!("{}: {e}", file.display()))?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            cpu_times.push(cpu_ms() - cpu_before);
            text = transcript.text.to_string();
        }
        // The first run is reported apart; the medians leave it out when there are others.
        let skip = usize::from(times.len() > 1);
        println!(
            "{}",
            serde_json::json!({
                "file": file.display().to_string(),
                "duration_ms": samples.len() as f64 * 1000.0 / f64::from(STT_SAMPLE_RATE),
                "first_ms": times[0],
                "median_ms": median(&times[skip..]),
                "median_cpu_ms": median(&cpu_times[skip..]),
                "times_ms": times,
                "cpu_ms": cpu_times,
                "text": text,
            })
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("transcribe: {message}");
            }
            eprintln!(
                "usage: transcribe [--settings TOML] [--repeat N] [--plugin PATH] [--verbose] FILE.wav..."
            );
            ExitCode::FAILURE
        }
    }
}
