#!/usr/bin/env python3
"""The piper plugin against the reference Python piper-tts, side by side in one run.

Same voice (en_US-joe-medium from `make model`), same texts, same ONNX Runtime thread count.
Each text is a reply that opens with a short sentence: time to first audio is how long until
the first chunk (ours) or the first sentence (piper-tts yields one chunk per sentence) is
ready; RTF is total synthesis time over audio length. Each text runs once to warm up, then
--runs times; figures are medians over all runs.

    python3 -m venv /tmp/piper-ref && /tmp/piper-ref/bin/pip install piper-tts==1.8.0
    /tmp/piper-ref/bin/python bench/piper/bench.py [--threads 1] [--runs 10]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [
    "Sure. The weather in Paris today is sunny and warm, with a light breeze in the afternoon.",
    "Okay! I have added milk, eggs and bread to your shopping list for the weekend.",
    "Good question. The train to London leaves from platform four at ten past nine.",
    "Done. I set a timer for ten minutes, and I will remind you when it rings.",
    "Yes. Your package will arrive on Friday between nine in the morning and noon.",
]


def models_dir() -> Path:
    if os.environ.get("OPENCLAW_MODELS_DIR"):
        return Path(os.environ["OPENCLAW_MODELS_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ["HOME"], ".cache")
    return Path(cache) / "openclaw-voice" / "models"


def ours(voice: Path, threads: int, runs: int, texts: Path) -> list:
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "openclaw-plugin-piper", "--example", "bench"],
        cwd=ROOT,
        check=True,
    )
    out = subprocess.run(
        [str(ROOT / "target/release/examples/bench"), str(voice), str(threads), str(runs), str(texts)],
        check=True,
        capture_output=True,
        text=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def reference(voice: Path, threads: int, runs: int) -> list:
    import onnxruntime
    from piper import PiperVoice

    piper = PiperVoice.load(voice)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    piper.session = onnxruntime.InferenceSession(
        str(voice), sess_options=options, providers=["CPUExecutionProvider"]
    )
    results = []
    for text in TEXTS:
        first, total, audio = [], [], 0.0
        for run in range(runs + 1):
            started = time.perf_counter()
            first_at, samples = None, 0
            for chunk in piper.synthesize(text):
                if first_at is None:
                    first_at = (time.perf_counter() - started) * 1e3
                samples += len(chunk.audio_int16_array)
            if run > 0:
                first.append(first_at)
                total.append((time.perf_counter() - started) * 1e3)
                audio = samples / piper.config.sample_rate
        results.append({"text": text, "first_ms": first, "total_ms": total, "audio_s": audio})
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--voice", type=Path, default=models_dir() / "en_US-joe-medium.onnx")
    args = parser.parse_args()
    if not args.voice.is_file():
        sys.exit(f"{args.voice} is missing: run `make model`")
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as texts:
        texts.write("\n".join(TEXTS) + "\n")
        texts.flush()
        rust = ours(args.voice, args.threads, args.runs, Path(texts.name))
    python = reference(args.voice, args.threads, args.runs)

    print(f"threads={args.threads}, runs={args.runs}, voice={args.voice.name}\n")
    print("| text | audio s | first audio ms: ours / piper-tts | RTF: ours / piper-tts |")
    print("|---|---|---|---|")
    summary = {"ours": ([], []), "piper-tts": ([], [])}
    for r, p in zip(rust, python):
        rows = []
        for name, res in (("ours", r), ("piper-tts", p)):
            rtf = [t / 1e3 / res["audio_s"] for t in res["total_ms"]]
            summary[name][0].extend(res["first_ms"])
            summary[name][1].extend(rtf)
            rows.append((statistics.median(res["first_ms"]), statistics.median(rtf)))
        print(
            f"| {r['text'][:40]}… | {r['audio_s']:.2f} | {rows[0][0]:.0f} / {rows[1][0]:.0f} "
            f"| {rows[0][1]:.3f} / {rows[1][1]:.3f} |"
        )
    for name, (first, rtf) in summary.items():
        print(
            f"\n{name}: first audio p50 {statistics.median(first):.0f} ms, "
            f"p95 {sorted(first)[int(0.95 * (len(first) - 1))]:.0f} ms; RTF p50 {statistics.median(rtf):.3f}"
        )


if __name__ == "__main__":
    main()
