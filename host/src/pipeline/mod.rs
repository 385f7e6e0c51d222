//! The voice pipeline, independent of any transport: per-speaker endpointing and resampling,
//! speech-to-text with failover, the agent, sentence streaming, text-to-speech, playback and
//! barge-in, with a timeline per turn.

pub mod endpoint;
pub(crate) mod mel;
pub mod models;
pub mod playback;
pub mod sentences;
pub(crate) mod speculation;
pub mod streaming;
pub mod turn;

pub use endpoint::{EndRule, EndpointConfig, SpeakerEndpointer, UtteranceAudio, UTTERANCE_RATE};
pub use models::{ModelError, TurnModels};
pub use playback::{AudioOutput, Playback};
pub use turn::{
    FrameRouter, SessionDeps, Speaker, TimelineMs, TurnGate, TurnOutcome, TurnReport, TurnTimeline,
    VoiceSession,
};
