//! Transports: where frames come from and where the bot's audio goes. `local` reads and
//! writes WAV files for `simulate`; `discord` serves Discord voice channels.

pub mod discord;
pub mod local;
