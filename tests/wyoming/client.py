"""A Wyoming client made with the `wyoming` library (PyPI), as Home Assistant uses it:
`describe`, a transcription of a WAV file, a synthesis. Prints what it got as JSON.

    python client.py HOST PORT SPEECH.wav "text to speak"
"""

import asyncio
import json
import sys
import wave

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize


async def until(client, *types):
    while True:
        event = await client.read_event()
        if event is None:
            raise RuntimeError("the server closed the connection")
        if event.type in types or Error.is_type(event.type):
            return event


async def main(host: str, port: int, wav_path: str, text: str) -> dict:
    out = {}
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Describe().event())
        info = Info.from_event(await until(client, "info"))
        out["asr"] = [m.name for p in info.asr for m in p.models]
        out["tts"] = [v.name for p in info.tts for v in p.voices]
    async with AsyncTcpClient(host, port) as client:
        with wave.open(wav_path) as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            frames = w.readframes(w.getnframes())
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        step = rate * width * channels // 10
        for i in range(0, len(frames), step):
            chunk = AudioChunk(rate=rate, width=width, channels=channels, audio=frames[i : i + step])
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        event = await until(client, "transcript")
        out["transcript"] = Transcript.from_event(event).text if Transcript.is_type(event.type) else None
        out["stt_error"] = event.data if Error.is_type(event.type) else None
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Synthesize(text=text).event())
        samples, chunks, rate = 0, 0, None
        while True:
            event = await until(client, "audio-start", "audio-chunk", "audio-stop")
            if AudioStart.is_type(event.type):
                rate = AudioStart.from_event(event).rate
            elif AudioChunk.is_type(event.type):
                chunk = AudioChunk.from_event(event)
                samples += len(chunk.audio) // (chunk.width * chunk.channels)
                chunks += 1
            elif AudioStop.is_type(event.type):
                break
            else:
                out["tts_error"] = event.data
                break
        out.update(tts_rate=rate, tts_chunks=chunks, tts_seconds=samples / rate if rate else 0)
    return out


if __name__ == "__main__":
    host, port, wav_path, text = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    print(json.dumps(asyncio.run(asyncio.wait_for(main(host, port, wav_path, text), 60))))
