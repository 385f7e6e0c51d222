#!/usr/bin/env python3
"""The piper plugin against the reference Python piper-tts, side by side in one run.

Same voice (en_US-joe-medium from `make model`), same texts, same ONNX Runtime thread count.
Each text is a reply that opens with a short sentence: time to first audio is how long until
the first chunk (ours) or the first sentence (piper-tts yields one chunk per sentence) is
ready; RTF is total synthesis time over audio length. Runs alternate between the two, text
by text, so both see the same machine load; one round warms up, then --runs rounds count.

    python3 -m venv /tmp/piper-ref && /tmp/piper-ref/bin/pip install piper-tts==1.8.0
    /tmp/piper-ref/bin/python bench/piper/bench.py [--threads 1] [--runs 10]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
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


class Ours:
    """Our plugin in the `bench` example, one synthesis per line written to it."""

    def __init__(self, voice: Path, threads: int) -> None:
        subprocess.run(
            ["cargo", "build", "--release", "-q", "-p", "openclaw-plugin-piper", "--example", "bench"],
            cwd=ROOT,
            check=True,
        )
        self.process = subprocess.Popen(
            [str(ROOT / "target/release/examples/bench"), str(voice), str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, text: str) -> tuple:
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        result = json.loads(self.process.stdout.readline())
        return result["first_ms"], result["total_ms"], result["audio_s"]


class Reference:
    """piper-tts 1.8 with the same thread count."""

    def __init__(self, voice: Path, threads: int) -> None:
        import onnxruntime
        from piper import PiperVoice

        self.piper = PiperVoice.load(voice)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.piper.session = onnxruntime.InferenceSession(
            str(voice), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def run(self, text: str) -> tuple:
        started = time.perf_counter()
        first_ms, samples = None, 0
        for chunk in self.piper.synthesize(text):
            if first_ms is None:
                first_ms = (time.perf_counter() - started) * 1e3
            samples += len(chunk.audio_int16_array)
        total_ms = (time.perf_counter() - started) * 1e3
        return first_ms, total_ms, samples / self.piper.config.sample_rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--voice", type=Path, default=models_dir() / "en_US-joe-medium.onnx")
    args = parser.parse_args()
    if not args.voice.is_file():
        sys.exit(f"{args.voice} is missing: run `make model`")
    engines = {"ours": Ours(args.voice, args.threads), "piper-tts": Reference(args.voice, args.threads)}
    # results[name][text] = [(first_ms, rtf, total_ms, audio_s)]; runs alternate engine by
    # engine, text by text.
    results = {name: {text: [] for text in TEXTS} for name in engines}
    for run in range(args.runs + 1):
        # Who goes first changes every round, so neither always runs after the other.
        order = list(engines.items())[:: 1 if run % 2 == 0 else -1]
        for text in TEXTS:
            for name, engine in order:
                first_ms, total_ms, audio_s = engine.run(text)
                # A reply is played after it is made: the machine idles a moment, as it would.
                time.sleep(0.1)
                if run > 0:  # the first round warms up
                    results[name][text].append((first_ms, total_ms / 1e3 / audio_s, total_ms, audio_s))

    print(f"threads={args.threads}, runs={args.runs}, voice={args.voice.name}\n")
    print("| text | first audio ms p50: ours / piper-tts | RTF p50: ours / piper-tts |")
    print("|---|---|---|")
    for text in TEXTS:
        cells = [
            [statistics.median(x[i] for x in results[name][text]) for name in engines]
            for i in (0, 1)
        ]
        print(f"| {text[:40]}… | {cells[0][0]:.0f} / {cells[0][1]:.0f} | {cells[1][0]:.3f} / {cells[1][1]:.3f} |")
    totals = {}
    for name in engines:
        first = sorted(x[0] for t in TEXTS for x in results[name][t])
        rtf = [x[1] for t in TEXTS for x in results[name][t]]
        # Total time: each text's p50, summed over the texts.
        totals[name] = sum(statistics.median(x[2] for x in results[name][t]) for t in TEXTS)
        print(
            f"\n{name}: first audio p50 {statistics.median(first):.0f} ms, "
            f"p95 {first[int(0.95 * (len(first) - 1))]:.0f} ms; RTF p50 {statistics.median(rtf):.3f}; "
            f"total time {totals[name]:.0f} ms (p50 per text, summed) for "
            f"{sum(statistics.median(x[3] for x in results[name][t]) for t in TEXTS):.2f} s of audio"
        )
    ours, reference = totals["ours"], totals["piper-tts"]
    print(f"\ntotal time ours / piper-tts: {ours / reference:.3f}")


if __name__ == "__main__":
    main()
