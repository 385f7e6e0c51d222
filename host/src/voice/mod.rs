//! Transports: where frames come from and where the bot's audio goes. `local` reads and
//! writes WAV files for `simulate`; the Discord transport comes with the Discord adapter.

pub mod local;
