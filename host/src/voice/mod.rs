//! Transports: where frames come from and where the bot's audio goes. `local` reads and
//! writes WAV files for `simulate`; `discord` serves Discord voice channels; `wyoming`
//! offers the providers to Wyoming clients (Home Assistant).

pub mod discord;
pub mod local;
pub mod wyoming;
