//! local-whisper plugin (being written)
