//! The [Wyoming protocol](https://github.com/OHF-Voice/wyoming), Home Assistant's protocol for
//! local speech services, shared by the `wyoming` plugin (client) and `openclaw-voice wyoming
//! serve` (server). No I/O of its own: events are read from any `BufRead` and written to any
//! `Write`, so the caller sets socket timeouts.
//!
//! An event is a JSON header line (`type`, optional `data`, `data_length`, `payload_length`,
//! `version`), then `data_length` bytes of JSON merged into `data`, then `payload_length`
//! bytes of binary payload (PCM audio in `audio-chunk`). Lines and lengths are bounded, so a
//! peer sending garbage or a huge length gets a [`ProtocolError`], not an allocation.
//!
//! The events used here: `describe` → `info`; `transcribe`, `audio-start`, `audio-chunk`,
//! `audio-stop` → `transcript`; `synthesize` → `audio-start`, `audio-chunk`…, `audio-stop`;
//! `error` (`text`, `code`).

use std::io::{self, BufRead, Read, Write};

use serde_json::{json, Map, Value};

/// The protocol version written in each header (that of the `wyoming` package this was
/// tested against).
pub const VERSION: &str = "1.10.2";
/// Longest header line accepted.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest `data` block accepted.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;
/// Largest payload accepted (10 s of 48 kHz 16-bit stereo is 1.9 MB).
pub const MAX_PAYLOAD_BYTES: usize = 8 * 1024 * 1024;

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its type, e.g. `audio-chunk`.
    pub kind: String,
    /// Its data (a JSON object).
    pub data: Map<String, Value>,
    /// Its binary payload, if any.
    pub payload: Vec<u8>,
}

/// What went wrong reading or writing events.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The stream ended where an event (or the rest of one) was expected.
    #[error("the peer closed the connection{0}")]
    Closed(&'static str),
    /// A read or write failed (a timeout shows as `WouldBlock`/`TimedOut`).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The bytes are not a Wyoming event.
    #[error("not a Wyoming event: {0}")]
    Malformed(String),
}

impl ProtocolError {
    /// Whether the error is a socket timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ProtocolError::Io(e)
            if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }
}

impl Event {
    /// An event with data and no payload.
    pub fn new(kind: &str, data: Value) -> Event {
        let data = match data {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Event {
            kind: kind.to_string(),
            data,
            payload: Vec::new(),
        }
    }

    /// Adds a payload.
    pub fn with_payload(mut self, payload: Vec<u8>) -> Event {
        self.payload = payload;
        self
    }

    /// A string field of the data.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }

    /// An unsigned field of the data.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.data.get(key).and_then(Value::as_u64)
    }

    /// Writes the event: header line, data block, payload.
    pub fn write_to(&self, out: &mut impl Write) -> Result<(), ProtocolError> {
        let mut header = json!({"type": self.kind, "version": VERSION});
        let data = if self.data.is_empty() {
            None
        } else {
            Some(Value::Object(self.data.clone()).to_string())
        };
        if let Some(data) = &data {
            header["data_length"] = data.len().into();
        }
        if !self.payload.is_empty() {
            header["payload_length"] = self.payload.len().into();
        }
        let mut bytes = header.to_string().into_bytes();
        bytes.push(b'\n');
        if let Some(data) = data {
            bytes.extend_from_slice(data.as_bytes());
        }
        bytes.extend_from_slice(&self.payload);
        out.write_all(&bytes)?;
        out.flush()?;
        Ok(())
    }

    /// Reads one event; `Ok(None)` when the stream ends cleanly before it.
    pub fn read_from(input: &mut impl BufRead) -> Result<Option<Event>, ProtocolError> {
        let mut line = Vec::new();
        let read = input
            .by_ref()
            .take(MAX_HEADER_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') {
            return Err(if line.len() > MAX_HEADER_BYTES {
                ProtocolError::Malformed(format!("header line over {MAX_HEADER_BYTES} bytes"))
            } else {
                ProtocolError::Closed(" in the middle of an event header")
            });
        }
        let header: Value = serde_json::from_slice(&line)
            .map_err(|e| ProtocolError::Malformed(format!("header is not JSON ({e})")))?;
        let kind = header
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ProtocolError::Malformed("header has no `type`".into()))?
            .to_string();
        let mut data = match header.get("data") {
            Some(Value::Object(map)) => map.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err(ProtocolError::Malformed("`data` is not an object".into())),
        };
        let data_length = length(&header, "data_length", MAX_DATA_BYTES)?;
        if data_length > 0 {
            let block = read_exactly(input, data_length)?;
            match serde_json::from_slice(&block) {
                Ok(Value::Object(more)) => data.extend(more),
                _ => {
                    return Err(ProtocolError::Malformed(
                        "data block is not a JSON object".into(),
                    ))
                }
            }
        }
        let payload_length = length(&header, "payload_length", MAX_PAYLOAD_BYTES)?;
        let payload = read_exactly(input, payload_length)?;
        Ok(Some(Event {
            kind,
            data,
            payload,
        }))
    }
}

fn length(header: &Value, key: &str, max: usize) -> Result<usize, ProtocolError> {
    match header.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => match v.as_u64() {
            Some(n) if n as usize <= max => Ok(n as usize),
            Some(n) => Err(ProtocolError::Malformed(format!(
                "`{key}` {n} is over {max}"
            ))),
            None => Err(ProtocolError::Malformed(format!("`{key}` is not a length"))),
        },
    }
}

fn read_exactly(input: &mut impl Read, n: usize) -> Result<Vec<u8>, ProtocolError> {
    let mut buf = vec![0; n];
    input.read_exact(&mut buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ProtocolError::Closed(" in the middle of an event"),
        _ => ProtocolError::Io(e),
    })?;
    Ok(buf)
}

/// Audio format of `audio-start` / `audio-chunk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    /// Samples per second.
    pub rate: u32,
    /// Bytes per sample.
    pub width: u32,
    /// Channels.
    pub channels: u32,
}

impl AudioFormat {
    /// 16-bit mono at `rate`.
    pub fn mono16(rate: u32) -> AudioFormat {
        AudioFormat {
            rate,
            width: 2,
            channels: 1,
        }
    }

    /// The format an event states (`rate`, `width`, `channels`).
    pub fn of(event: &Event) -> Result<AudioFormat, ProtocolError> {
        let field = |key: &str| {
            event
                .u64(key)
                .filter(|v| *v > 0 && *v <= 384_000)
                .map(|v| v as u32)
                .ok_or_else(|| {
                    ProtocolError::Malformed(format!("`{}` has no valid `{key}`", event.kind))
                })
        };
        Ok(AudioFormat {
            rate: field("rate")?,
            width: field("width")?,
            channels: field("channels")?,
        })
    }

    /// The format as event data.
    pub fn data(&self) -> Value {
        json!({"rate": self.rate, "width": self.width, "channels": self.channels})
    }

    /// 16-bit samples from a payload in this format, channels averaged to mono.
    pub fn to_mono16(&self, payload: &[u8]) -> Result<Vec<i16>, ProtocolError> {
        if self.width != 2 {
            return Err(ProtocolError::Malformed(format!(
                "audio of {} bytes per sample (only 16-bit is supported)",
                self.width
            )));
        }
        let channels = self.channels as usize;
        let frame = 2 * channels;
        if !payload.len().is_multiple_of(frame) {
            return Err(ProtocolError::Malformed(format!(
                "an audio chunk of {} bytes is not whole {channels}-channel 16-bit frames",
                payload.len()
            )));
        }
        Ok(payload
            .chunks_exact(frame)
            .map(|f| {
                let sum: i32 = f
                    .chunks_exact(2)
                    .map(|s| i32::from(i16::from_le_bytes([s[0], s[1]])))
                    .sum();
                (sum / channels as i32) as i16
            })
            .collect())
    }
}

/// 16-bit samples as a little-endian payload.
pub fn pcm_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn read(bytes: &[u8]) -> Result<Option<Event>, ProtocolError> {
        Event::read_from(&mut Cursor::new(bytes.to_vec()))
    }

    #[test]
    fn events_round_trip_with_data_and_payload() {
        let event = Event::new("audio-chunk", AudioFormat::mono16(16000).data())
            .with_payload(pcm_bytes(&[1, -2, 300]));
        let mut bytes = Vec::new();
        event.write_to(&mut bytes).unwrap();
        let first_line = bytes.split(|b| *b == b'\n').next().unwrap();
        let header: Value = serde_json::from_slice(first_line).unwrap();
        assert_eq!(header["payload_length"], 6);
        assert!(header.get("data").is_none(), "data goes in its own block");
        let back = read(&bytes).unwrap().unwrap();
        assert_eq!(back, event);
        assert_eq!(
            AudioFormat::of(&back)
                .unwrap()
                .to_mono16(&back.payload)
                .unwrap(),
            [1, -2, 300]
        );
        assert!(read(b"").unwrap().is_none());
    }

    #[test]
    fn inline_data_and_a_data_block_merge() {
        let bytes = b"{\"type\":\"transcript\",\"data\":{\"text\":\"hi\"},\"data_length\":17}\n{\"language\":\"en\"}";
        let event = read(bytes).unwrap().unwrap();
        assert_eq!(event.str("text"), Some("hi"));
        assert_eq!(event.str("language"), Some("en"));
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics_or_allocations() {
        for bad in [
            &b"hello\n"[..],
            b"{\"data\":{}}\n",
            b"{\"type\":\"x\",\"payload_length\":99999999999}\n",
            b"{\"type\":\"x\",\"data\":3}\n",
            b"{\"type\":\"x\",\"data_length\":2}\n[]",
        ] {
            assert!(
                matches!(read(bad), Err(ProtocolError::Malformed(_))),
                "{bad:?}"
            );
        }
        for cut in [
            &b"{\"type\":\"x\""[..],
            b"{\"type\":\"x\",\"payload_length\":4}\nab",
        ] {
            assert!(
                matches!(read(cut), Err(ProtocolError::Closed(_))),
                "{cut:?}"
            );
        }
        let long = vec![b'x'; MAX_HEADER_BYTES + 10];
        assert!(matches!(read(&long), Err(ProtocolError::Malformed(_))));
    }

    #[test]
    fn stereo_is_averaged_and_other_widths_refused() {
        let stereo = AudioFormat {
            rate: 22050,
            width: 2,
            channels: 2,
        };
        assert_eq!(
            stereo.to_mono16(&pcm_bytes(&[100, 300, -4, -6])).unwrap(),
            [200, -5]
        );
        assert!(stereo.to_mono16(&[0, 0, 0]).is_err());
        let wide = AudioFormat { width: 4, ..stereo };
        assert!(wide.to_mono16(&[0; 8]).is_err());
    }
}
