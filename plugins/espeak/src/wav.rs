//! An incremental decoder for the RIFF/WAVE stream `espeak-ng --stdout` writes.
//!
//! espeak-ng writes its WAV header before it knows how long the audio will be, so the `RIFF`
//! and `data` size fields are placeholders (`0x7FFFF000` in 1.51; other writers use
//! `0xFFFFFFFF` or `0`). The decoder therefore treats the declared `data` size as an upper bound
//! only: bytes after it are taken as audio too, unless they start with what looks like another
//! chunk header. Bytes may arrive in pieces of any size, split anywhere, even inside the header
//! or a sample.
//!
//! Only 16-bit integer PCM is accepted (plain or `WAVE_FORMAT_EXTENSIBLE`); several channels
//! are averaged down to mono.

use std::fmt;

/// What went wrong while decoding a WAV stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WavError {
    /// The stream does not start with `RIFF....WAVE`.
    NotWave,
    /// The stream ended before the header was complete (`bytes` were read in all).
    Truncated {
        /// How many bytes arrived.
        bytes: usize,
    },
    /// The `fmt ` chunk is malformed (too short, zero channels or sample rate).
    BadFormat(&'static str),
    /// The samples are not 16-bit integer PCM.
    Unsupported {
        /// The `wFormatTag` (1 = PCM).
        format_tag: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// The `data` chunk came before any `fmt ` chunk.
    DataBeforeFormat,
    /// A chunk before `data` declares an absurd size.
    OversizedChunk {
        /// The chunk id, as text.
        id: String,
        /// Its declared size in bytes.
        size: u32,
    },
}

impl fmt::Display for WavError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WavError::NotWave => f.write_str("not a RIFF/WAVE stream"),
            WavError::Truncated { bytes } => {
                write!(f, "WAV stream ended inside its header ({bytes} bytes)")
            }
            WavError::BadFormat(why) => write!(f, "malformed WAV `fmt ` chunk: {why}"),
            WavError::Unsupported { format_tag, bits } => write!(
                f,
                "unsupported WAV sample format (format tag {format_tag}, {bits} bits); \
                 expected 16-bit PCM"
            ),
            WavError::DataBeforeFormat => f.write_str("WAV `data` chunk before `fmt ` chunk"),
            WavError::OversizedChunk { id, size } => {
                write!(f, "WAV chunk `{id}` declares an absurd size ({size} bytes)")
            }
        }
    }
}

impl std::error::Error for WavError {}

/// The audio format found in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Samples per second.
    pub sample_rate: u32,
    /// Interleaved channels in the file (the decoder outputs mono).
    pub channels: u16,
}

/// Chunks other than `data` larger than this are refused (they would be buffered whole).
const MAX_SKIPPED_CHUNK: u32 = 1 << 20;
const WAVE_FORMAT_PCM: u16 = 1;
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;

#[derive(Debug)]
enum State {
    /// Reading `RIFF`, `WAVE` and the chunks before `data`; `offset` is where the next chunk
    /// header starts in `buf`.
    Header { offset: usize },
    /// Inside the `data` chunk, with this many declared bytes left.
    Data { declared_left: u64 },
    /// The declared `data` size was used up; deciding whether what follows is another chunk
    /// (then it is ignored) or more audio (the declared size was wrong).
    AfterData,
    /// Past the audio: everything else is ignored.
    Trailer,
}

/// Decodes a WAV byte stream into mono `i16` samples, piece by piece.
#[derive(Debug)]
pub struct WavDecoder {
    state: State,
    /// Header bytes, a partial frame, or undecided bytes after the declared data size.
    buf: Vec<u8>,
    format: Option<WavFormat>,
    total_bytes: usize,
}

impl Default for WavDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl WavDecoder {
    /// A decoder waiting for the first byte.
    pub fn new() -> Self {
        WavDecoder {
            state: State::Header { offset: 12 },
            buf: Vec::new(),
            format: None,
            total_bytes: 0,
        }
    }

    /// The format, once the header has been read.
    pub fn format(&self) -> Option<WavFormat> {
        self.format
    }

    /// Feeds the next bytes of the stream, appending any complete samples to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<i16>) -> Result<(), WavError> {
        self.total_bytes += bytes.len();
        self.buf.extend_from_slice(bytes);
        self.advance(out)
    }

    /// Ends the stream: fails if the header never completed. A trailing partial frame is
    /// dropped.
    pub fn finish(&mut self, out: &mut Vec<i16>) -> Result<(), WavError> {
        match self.state {
            State::Header { .. } => Err(if self.buf.len() >= 12 && !self.is_riff_wave() {
                WavError::NotWave
            } else {
                WavError::Truncated {
                    bytes: self.total_bytes,
                }
            }),
            State::AfterData => {
                // Too few bytes to tell: a chunk header needs 8, so these are audio.
                if !looks_like_chunk_id(&self.buf) {
                    self.state = State::Data {
                        declared_left: u64::MAX,
                    };
                    self.decode_frames(out);
                }
                self.buf.clear();
                Ok(())
            }
            State::Data { .. } | State::Trailer => {
                self.buf.clear();
                Ok(())
            }
        }
    }

    fn is_riff_wave(&self) -> bool {
        self.buf.len() >= 12 && &self.buf[0..4] == b"RIFF" && &self.buf[8..12] == b"WAVE"
    }

    fn advance(&mut self, out: &mut Vec<i16>) -> Result<(), WavError> {
        loop {
            match self.state {
                State::Header { offset } => {
                    if self.buf.len() < 12 {
                        return Ok(());
                    }
                    if !self.is_riff_wave() {
                        return Err(WavError::NotWave);
                    }
                    let Some(header) = self.buf.get(offset..offset + 8) else {
                        return Ok(());
                    };
                    let id = [header[0], header[1], header[2], header[3]];
                    let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
                    if &id == b"data" {
                        if self.format.is_none() {
                            return Err(WavError::DataBeforeFormat);
                        }
                        self.buf.drain(..offset + 8);
                        self.state = State::Data {
                            // A zero size is another "unknown length" placeholder.
                            declared_left: if size == 0 { u64::MAX } else { u64::from(size) },
                        };
                        continue;
                    }
                    if size > MAX_SKIPPED_CHUNK {
                        return Err(WavError::OversizedChunk {
                            id: String::from_utf8_lossy(&id).into_owned(),
                            size,
                        });
                    }
                    // Chunks are padded to an even length.
                    let body_len = size as usize + (size as usize & 1);
                    let body_start = offset + 8;
                    let Some(body) = self.buf.get(body_start..body_start + body_len) else {
                        return Ok(());
                    };
                    if &id == b"fmt " {
                        self.format = Some(parse_fmt(&body[..size as usize])?);
                    }
                    self.state = State::Header {
                        offset: body_start + body_len,
                    };
                }
                State::Data { .. } => {
                    self.decode_frames(out);
                    if matches!(self.state, State::Data { .. }) {
                        return Ok(());
                    }
                }
                State::AfterData => {
                    if self.buf.len() < 8 {
                        return Ok(());
                    }
                    if looks_like_chunk_id(&self.buf) {
                        self.state = State::Trailer;
                        self.buf.clear();
                    } else {
                        // The declared size was wrong: the rest is audio.
                        self.state = State::Data {
                            declared_left: u64::MAX,
                        };
                    }
                }
                State::Trailer => {
                    self.buf.clear();
                    return Ok(());
                }
            }
        }
    }

    /// Turns the whole frames in `buf` (up to the declared size) into mono samples.
    fn decode_frames(&mut self, out: &mut Vec<i16>) {
        let State::Data { declared_left } = self.state else {
            return;
        };
        let Some(format) = self.format else {
            return;
        };
        let channels = usize::from(format.channels.max(1));
        let frame = 2 * channels;
        let available = (self.buf.len() as u64).min(declared_left) as usize;
        let whole = available - available % frame;
        out.reserve(whole / frame);
        for bytes in self.buf[..whole].chunks_exact(frame) {
            if channels == 1 {
                out.push(i16::from_le_bytes([bytes[0], bytes[1]]));
            } else {
                let sum: i32 = bytes
                    .chunks_exact(2)
                    .map(|b| i32::from(i16::from_le_bytes([b[0], b[1]])))
                    .sum();
                out.push((sum / channels as i32) as i16);
            }
        }
        self.buf.drain(..whole);
        let left = declared_left.saturating_sub(whole as u64);
        let used_up = left == 0
            // Less than a frame declared: padding, once it has arrived.
            || (left < frame as u64 && self.buf.len() as u64 >= left);
        if used_up {
            self.buf.drain(..left as usize);
            self.state = State::AfterData;
        } else {
            self.state = State::Data {
                declared_left: left,
            };
        }
    }
}

/// Whether `bytes` start like a RIFF chunk header: four printable ASCII characters.
fn looks_like_chunk_id(bytes: &[u8]) -> bool {
    bytes.len() >= 4
        && bytes[..4]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b' ')
}

fn parse_fmt(body: &[u8]) -> Result<WavFormat, WavError> {
    if body.len() < 16 {
        return Err(WavError::BadFormat("shorter than 16 bytes"));
    }
    let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
    let mut format_tag = u16_at(0);
    let channels = u16_at(2);
    let sample_rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
    let bits = u16_at(14);
    if format_tag == WAVE_FORMAT_EXTENSIBLE && body.len() >= 26 {
        // The sub-format GUID starts with the real format tag.
        format_tag = u16_at(24);
    }
    if format_tag != WAVE_FORMAT_PCM || bits != 16 {
        return Err(WavError::Unsupported { format_tag, bits });
    }
    if channels == 0 {
        return Err(WavError::BadFormat("zero channels"));
    }
    if sample_rate == 0 {
        return Err(WavError::BadFormat("zero sample rate"));
    }
    Ok(WavFormat {
        sample_rate,
        channels,
    })
}

/// Decodes a complete WAV byte buffer into its format and mono samples.
pub fn decode(bytes: &[u8]) -> Result<(WavFormat, Vec<i16>), WavError> {
    let mut decoder = WavDecoder::new();
    let mut samples = Vec::new();
    decoder.push(bytes, &mut samples)?;
    decoder.finish(&mut samples)?;
    let format = decoder
        .format()
        .ok_or(WavError::Truncated { bytes: bytes.len() })?;
    Ok((format, samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAV header like espeak-ng's, with the given `data` size field.
    fn header(sample_rate: u32, channels: u16, data_size: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&data_size.wrapping_add(36).to_le_bytes());
        h.extend_from_slice(b"WAVE");
        h.extend_from_slice(b"fmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&channels.to_le_bytes());
        h.extend_from_slice(&sample_rate.to_le_bytes());
        h.extend_from_slice(&(sample_rate * 2 * u32::from(channels)).to_le_bytes());
        h.extend_from_slice(&(2 * channels).to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&data_size.to_le_bytes());
        h
    }

    fn pcm(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn placeholder_sizes_take_all_remaining_bytes() {
        let samples: Vec<i16> = (0..1000).map(|i| (i * 7 - 3000) as i16).collect();
        for size in [0x7FFF_F000, 0xFFFF_FFFF, 0] {
            let mut bytes = header(22_050, 1, size);
            bytes.extend(pcm(&samples));
            let (format, decoded) = decode(&bytes).unwrap();
            assert_eq!(format.sample_rate, 22_050);
            assert_eq!(decoded, samples, "size field {size:#x}");
        }
    }

    #[test]
    fn too_small_size_field_still_takes_the_audio() {
        let samples: Vec<i16> = (0..500).map(|i| (i * 13 + 1000) as i16).collect();
        let mut bytes = header(16_000, 1, 10);
        bytes.extend(pcm(&samples));
        let (_, decoded) = decode(&bytes).unwrap();
        assert_eq!(decoded, samples);
    }

    #[test]
    fn correct_size_field_stops_before_a_trailing_chunk() {
        let samples = [1i16, -2, 3, -4];
        let mut bytes = header(8_000, 1, 8);
        bytes.extend(pcm(&samples));
        bytes.extend_from_slice(b"LIST");
        bytes.extend_from_slice(&4u32.to_le_bytes());
        bytes.extend_from_slice(b"INFO");
        let (_, decoded) = decode(&bytes).unwrap();
        assert_eq!(decoded, samples);
    }

    #[test]
    fn byte_by_byte_feeding_matches_one_shot() {
        let samples: Vec<i16> = (0..300).map(|i| (i * 101) as i16).collect();
        let mut bytes = header(22_050, 1, 0x7FFF_F000);
        bytes.extend(pcm(&samples));
        bytes.push(0x55); // a dangling half sample is dropped
        let mut decoder = WavDecoder::new();
        let mut out = Vec::new();
        for b in &bytes {
            decoder.push(std::slice::from_ref(b), &mut out).unwrap();
        }
        decoder.finish(&mut out).unwrap();
        assert_eq!(out, samples);
        assert_eq!(decoder.format().unwrap().sample_rate, 22_050);
    }

    #[test]
    fn skips_unknown_chunks_before_data_and_reads_extensible_fmt() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"RIFF\xff\xff\xff\xffWAVE");
        bytes.extend_from_slice(b"LIST");
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(b"abc\0"); // odd size + pad byte
        bytes.extend_from_slice(b"fmt ");
        bytes.extend_from_slice(&40u32.to_le_bytes());
        let mut fmt = vec![0u8; 40];
        fmt[0..2].copy_from_slice(&WAVE_FORMAT_EXTENSIBLE.to_le_bytes());
        fmt[2..4].copy_from_slice(&2u16.to_le_bytes());
        fmt[4..8].copy_from_slice(&48_000u32.to_le_bytes());
        fmt[14..16].copy_from_slice(&16u16.to_le_bytes());
        fmt[24..26].copy_from_slice(&1u16.to_le_bytes());
        bytes.extend(fmt);
        bytes.extend_from_slice(b"data\xff\xff\xff\xff");
        bytes.extend(pcm(&[100, 300, -100, -300]));
        let (format, decoded) = decode(&bytes).unwrap();
        assert_eq!(format.channels, 2);
        assert_eq!(format.sample_rate, 48_000);
        assert_eq!(decoded, vec![200, -200]);
    }

    #[test]
    fn refuses_garbage_and_truncation_and_non_pcm16() {
        assert_eq!(decode(b"hello world, not a wav"), Err(WavError::NotWave));
        assert_eq!(decode(b""), Err(WavError::Truncated { bytes: 0 }));
        let bytes = header(22_050, 1, 0x7FFF_F000);
        assert!(matches!(
            decode(&bytes[..30]),
            Err(WavError::Truncated { bytes: 30 })
        ));
        let mut eight_bit = header(22_050, 1, 0);
        eight_bit[34] = 8;
        assert!(matches!(
            decode(&eight_bit),
            Err(WavError::Unsupported { bits: 8, .. })
        ));
    }

    #[test]
    fn header_only_is_an_empty_stream() {
        let (format, decoded) = decode(&header(22_050, 1, 0x7FFF_F000)).unwrap();
        assert_eq!(format.sample_rate, 22_050);
        assert!(decoded.is_empty());
    }
}
