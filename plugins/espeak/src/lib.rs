//! espeak plugin (being written)
