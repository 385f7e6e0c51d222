//! RTP for Discord voice with `aead_aes256_gcm_rtpsize`: the 12-byte header (and, when the
//! extension bit is set, the 4-byte extension preamble) in the clear as associated data; the
//! rest (extension body and Opus payload) encrypted with AES-256-GCM; then the 16-byte tag and
//! a 4-byte big-endian packet counter, which is the first 4 bytes of the 12-byte nonce (the
//! other 8 are zero). Also Discord's IP discovery packets.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};

/// RTP payload type Discord uses for Opus.
pub const OPUS_PAYLOAD_TYPE: u8 = 0x78;
/// The mode the fake offers first and the bot chooses.
pub const MODE: &str = "aead_aes256_gcm_rtpsize";
/// Length of an IP discovery packet.
pub const DISCOVERY_LEN: usize = 74;
/// An Opus frame of silence (Discord clients send five when they stop talking).
pub const OPUS_SILENCE: [u8; 3] = [0xF8, 0xFF, 0xFE];

const TAG_LEN: usize = 16;
const NONCE_LEN: usize = 4;

/// One voice connection's cipher.
pub struct RtpCipher(Aes256Gcm);

/// A decrypted packet.
#[derive(Debug, Clone)]
pub struct Opened {
    /// Sender.
    pub ssrc: u32,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp (48 kHz units).
    pub timestamp: u32,
    /// Payload type.
    pub payload_type: u8,
    /// The Opus payload.
    pub payload: Vec<u8>,
}

impl RtpCipher {
    /// From the 32-byte secret key of the session description.
    pub fn new(key: &[u8; 32]) -> RtpCipher {
        RtpCipher(Aes256Gcm::new(key.into()))
    }

    /// A packet carrying `payload`, without header extension.
    pub fn seal(
        &self,
        sequence: u16,
        timestamp: u32,
        ssrc: u32,
        counter: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut packet = Vec::with_capacity(12 + payload.len() + TAG_LEN + NONCE_LEN);
        packet.push(0x80);
        packet.push(OPUS_PAYLOAD_TYPE);
        packet.extend_from_slice(&sequence.to_be_bytes());
        packet.extend_from_slice(&timestamp.to_be_bytes());
        packet.extend_from_slice(&ssrc.to_be_bytes());
        let mut body = payload.to_vec();
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&counter.to_be_bytes());
        let tag = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &packet, &mut body)
            .expect("AES-GCM encryption of a small packet");
        packet.extend_from_slice(&body);
        packet.extend_from_slice(&tag);
        packet.extend_from_slice(&counter.to_be_bytes());
        packet
    }

    /// Decrypts an RTP packet; `None` if it is not one or does not authenticate.
    pub fn open(&self, packet: &[u8]) -> Option<Opened> {
        if packet.len() < 12 + TAG_LEN + NONCE_LEN || packet[0] >> 6 != 2 {
            return None;
        }
        let csrc = usize::from(packet[0] & 0x0F);
        let extension = packet[0] & 0x10 != 0;
        let mut aad_len = 12 + 4 * csrc;
        let mut ext_words = 0usize;
        if extension {
            let pre = packet.get(aad_len..aad_len + 4)?;
            ext_words = usize::from(u16::from_be_bytes([pre[2], pre[3]]));
            aad_len += 4;
        }
        let end = packet.len() - TAG_LEN - NONCE_LEN;
        if end < aad_len {
            return None;
        }
        let (aad, rest) = packet.split_at(aad_len);
        let mut body = rest[..end - aad_len].to_vec();
        let tag = Tag::from_slice(&packet[end..end + TAG_LEN]);
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&packet[end + TAG_LEN..]);
        self.0
            .decrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut body, tag)
            .ok()?;
        let payload = body.get(ext_words * 4..)?.to_vec();
        Some(Opened {
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
            sequence: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            payload_type: packet[1] & 0x7F,
            payload,
        })
    }
}

/// Whether `packet` is an IP discovery request; its SSRC if so.
pub fn discovery_request(packet: &[u8]) -> Option<u32> {
    (packet.len() == DISCOVERY_LEN && packet[0..2] == [0, 1])
        .then(|| u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]))
}

/// The answer to an IP discovery request: the address and port the request came from.
pub fn discovery_response(ssrc: u32, ip: &str, port: u16) -> Vec<u8> {
    let mut p = vec![0u8; DISCOVERY_LEN];
    p[0..2].copy_from_slice(&2u16.to_be_bytes());
    p[2..4].copy_from_slice(&70u16.to_be_bytes());
    p[4..8].copy_from_slice(&ssrc.to_be_bytes());
    p[8..8 + ip.len()].copy_from_slice(ip.as_bytes());
    p[72..74].copy_from_slice(&port.to_be_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_packets_open_and_tampering_is_caught() {
        let cipher = RtpCipher::new(&[7; 32]);
        let packet = cipher.seal(9, 960, 1234, 1, b"opus!");
        let opened = cipher.open(&packet).unwrap();
        assert_eq!(opened.payload, b"opus!");
        assert_eq!(
            (opened.ssrc, opened.sequence, opened.timestamp),
            (1234, 9, 960)
        );
        let mut bad = packet.clone();
        bad[13] ^= 1;
        assert!(cipher.open(&bad).is_none());
        assert!(RtpCipher::new(&[8; 32]).open(&packet).is_none());
    }

    #[test]
    fn discovery_round_trip() {
        let mut req = vec![0u8; DISCOVERY_LEN];
        req[1] = 1;
        req[7] = 5;
        assert_eq!(discovery_request(&req), Some(5));
        let resp = discovery_response(5, "127.0.0.1", 5000);
        assert_eq!(&resp[8..17], b"127.0.0.1");
        assert_eq!(resp[17], 0);
    }
}
