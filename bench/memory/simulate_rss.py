#!/usr/bin/env python3
"""Peak resident memory of `openclaw-voice simulate` with the turn-taking models, per process.

Runs one espeak-ng question through `simulate` (real time) with the configuration that
tests/benches/turn_taking.rs writes (local-whisper in a worker, espeak, `[pipeline] vad =
"silero"`, `turn_model = "smart-turn"`), `--runs` times, and prints for each run simulate's
own figure (the sum of the processes' VmHWM), each process's VmHWM, how many speculative
transcriptions were thrown away, and how many resident pages the host and its workers share
near the end of the run (the same executable's code, libc: counted once per process in the
sum; needs root to read physical page numbers from /proc/PID/pagemap, else "n/a").

    cargo build --release -p openclaw-voice -p openclaw-plugin-local-whisper -p openclaw-plugin-espeak
    python3 bench/memory/simulate_rss.py --runs 5
    python3 bench/memory/simulate_rss.py --pipeline 'turn_pause_ms = 200'

Figures: docs/BENCHMARKS.md, "Turn taking" -> "Memory".
"""

import argparse
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "What is the weather like in Paris today?"


def whisper_model():
    for path in [os.environ.get("OPENCLAW_TEST_MODEL"), ROOT / "models/ggml-tiny.en.bin",
                 ROOT / "../shared/models/ggml-tiny.en.bin"]:
        if path and Path(path).is_file():
            return Path(path).resolve()
    raise SystemExit("no tiny.en model: run `make model` or set OPENCLAW_TEST_MODEL")


def write_config(work, pipeline):
    plugins = work / "plugins"
    plugins.mkdir()
    for name in ["libopenclaw_plugin_local_whisper.so", "libopenclaw_plugin_espeak.so"]:
        shutil.copy(ROOT / "target/release" / name, plugins / name)
    config = work / "config"
    config.mkdir()
    lines = 'vad = "silero"\nturn_model = "smart-turn"\n' + "\n".join(pipeline)
    (config / "test.toml").write_text(
        f'[plugins]\ndir = "{plugins}"\n'
        '[stt]\nproviders = ["local-whisper"]\n[tts]\nproviders = ["espeak"]\n'
        "[providers.local-whisper]\ntimeout_ms = 60000\n"
        f'[providers.local-whisper.settings]\nmodel = "{whisper_model()}"\n'
        '[providers.espeak.settings]\nvoice = "en-us"\n'
        f"[pipeline]\n{lines}\n"
        '[ops]\nenabled = false\n[logging]\nlevel = "warn"\n'
    )
    return config


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


def status_kb(pid, key):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def resident_pages(pid):
    """Physical page numbers of `pid`'s resident pages, or None without the right to see them."""
    pages = set()
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[5] in ("[vsyscall]", "[vvar]", "[vvar_vclock]"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            pagemap.seek(start // 4096 * 8)
            for (entry,) in struct.iter_unpack("<Q", pagemap.read((end - start) // 4096 * 8)):
                if entry >> 63:
                    pages.add(entry & ((1 << 55) - 1))
    return None if pages == {0} else pages


def role(pid, host):
    """`host`, or the plugin a worker loaded (`local_whisper`, `espeak`), or `worker`."""
    if pid == host:
        return "host"
    try:
        found = re.search(r"libopenclaw_plugin_(\w+)\.so", Path(f"/proc/{pid}/maps").read_text())
    except OSError:
        return "worker"
    return found.group(1) if found else "worker"


def shared_mb(pids):
    try:
        sets = [resident_pages(p) for p in pids]
    except OSError:
        return None
    if any(s is None for s in sets):
        return None
    return (sum(len(s) for s in sets) - len(set().union(*sets))) * 4 / 1024


def run(binary, config, wav, work):
    command = [str(binary), "--config-dir", str(config), "--env", "test", "simulate",
               "--input", str(wav), "--output", str(work / "reply.wav")]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peaks, roles, shared, last_shared = {}, {}, None, 0.0
    while proc.poll() is None:
        pids = [proc.pid] + children(proc.pid)
        for pid in pids:
            try:
                peaks[pid] = max(peaks.get(pid, 0), status_kb(pid, "VmHWM:"))
            except OSError:
                continue
            if roles.get(pid, "worker") == "worker":
                roles[pid] = role(pid, proc.pid)
        if time.monotonic() - last_shared > 0.5 and len(pids) > 1:
            shared, last_shared = shared_mb(pids) or shared, time.monotonic()
        time.sleep(0.05)
    out = proc.stdout.read()
    total = re.search(r"peak memory \(RSS\): ([\d.]+) MB", out)
    thrown = re.findall(r"(\d+) thrown away", out)
    peaks = {f"{roles.get(pid, 'worker')} {pid}": kb for pid, kb in peaks.items()}
    return total.group(1) if total else "?", peaks, thrown, shared, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pipeline", action="append", default=[],
                        help="another [pipeline] line, e.g. 'turn_pause_ms = 200'")
    args = parser.parse_args()
    binary = ROOT / "target/release/openclaw-voice"
    with tempfile.TemporaryDirectory(prefix="ocv-rss-") as tmp:
        work = Path(tmp)
        config = write_config(work, args.pipeline)
        wav = work / "question.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "-w", str(wav), QUESTION],
                       check=True)
        for n in range(args.runs):
            total, peaks, thrown, shared, out = run(binary, config, wav, work)
            if total == "?":
                raise SystemExit(f"simulate printed no peak memory:\n{out}")
            processes = ", ".join(f"{name} {kb / 1024:.1f}" for name, kb in peaks.items())
            shared_text = "n/a" if shared is None else f"{shared:.1f} MB"
            print(f"run {n + 1}: {total} MB (VmHWM in MB: {processes}); speculations "
                  f"thrown away: {'+'.join(thrown) or '0'}; pages counted twice: {shared_text}")


if __name__ == "__main__":
    main()
