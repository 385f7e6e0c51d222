//! One call to a Wyoming server: a fresh TCP connection (so a server restarted since the last
//! call is simply reconnected to; a refused connection is tried once more after 100 ms), the
//! events of the call, and every failure as a [`PluginError`] the host can act on: refused,
//! closed mid-call or garbage → `Unavailable` (the host fails over), no answer within
//! `io_timeout_ms` or the call past `timeout_ms` → `Timeout`, an `error` event → `Unavailable`
//! with the server's text.

use std::io::BufReader;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use openclaw_wyoming::{Event, ProtocolError};
use plugin_api::abi::PluginError;
use serde_json::json;

use crate::settings::Settings;

/// What a server says it offers (`info`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Offer {
    /// Speech-to-text models: name and languages.
    pub asr: Vec<(String, Vec<String>)>,
    /// Text-to-speech voices: name and languages.
    pub tts: Vec<(String, Vec<String>)>,
}

/// An open connection for one call.
pub struct Call {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    deadline: Instant,
    io_timeout: Duration,
    address: String,
}

/// Connects to the server for one call.
pub fn connect(settings: &Settings) -> Result<Call, PluginError> {
    let deadline = Instant::now() + settings.timeout();
    let addresses: Vec<SocketAddr> = settings
        .address
        .to_socket_addrs()
        .map_err(|e| {
            PluginError::unavailable(format!("cannot resolve `{}`: {e}", settings.address))
        })?
        .collect();
    let mut last = None;
    for attempt in 0..2 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        for address in &addresses {
            match TcpStream::connect_timeout(address, settings.connect_timeout()) {
                Ok(stream) => return Call::new(stream, settings, deadline),
                Err(e) => last = Some(e),
            }
        }
    }
    let why = last.map_or_else(|| "no address".to_string(), |e| e.to_string());
    Err(PluginError::unavailable(format!(
        "cannot connect to the Wyoming server at {}: {why}",
        settings.address
    )))
}

impl Call {
    fn new(stream: TcpStream, settings: &Settings, deadline: Instant) -> Result<Call, PluginError> {
        let io = |e: std::io::Error| PluginError::unavailable(format!("socket: {e}"));
        stream.set_nodelay(true).map_err(io)?;
        stream
            .set_write_timeout(Some(settings.io_timeout()))
            .map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        Ok(Call {
            reader: BufReader::new(stream),
            writer,
            deadline,
            io_timeout: settings.io_timeout(),
            address: settings.address.clone(),
        })
    }

    /// A handle that can end the call from another thread.
    pub fn closer(&self) -> Option<TcpStream> {
        self.writer.try_clone().ok()
    }

    /// Sends one event.
    pub fn send(&mut self, event: &Event) -> Result<(), PluginError> {
        event
            .write_to(&mut self.writer)
            .map_err(|e| self.error(e, "sending"))
    }

    /// The next event, within the idle and whole-call limits.
    pub fn receive(&mut self) -> Result<Event, PluginError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out());
        }
        let limit = left.min(self.io_timeout);
        let _ = self.reader.get_ref().set_read_timeout(Some(limit));
        match Event::read_from(&mut self.reader) {
            Ok(Some(event)) if event.kind == "error" => Err(PluginError::unavailable(format!(
                "the Wyoming server at {} answered with an error: {}",
                self.address,
                event.str("text").unwrap_or("(no text)")
            ))),
            Ok(Some(event)) => Ok(event),
            Ok(None) => Err(PluginError::unavailable(format!(
                "the Wyoming server at {} closed the connection before answering",
                self.address
            ))),
            Err(e) => Err(self.error(e, "reading")),
        }
    }

    /// Receives events until one of `kind`, skipping others.
    pub fn receive_until(&mut self, kind: &str) -> Result<Event, PluginError> {
        loop {
            let event = self.receive()?;
            if event.kind == kind {
                return Ok(event);
            }
        }
    }

    fn timed_out(&self) -> PluginError {
        PluginError::timeout(format!(
            "the Wyoming server at {} did not answer in time",
            self.address
        ))
    }

    fn error(&self, error: ProtocolError, doing: &str) -> PluginError {
        if error.is_timeout() {
            return self.timed_out();
        }
        PluginError::unavailable(format!(
            "{doing} the Wyoming server at {}: {error}",
            self.address
        ))
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let _ = self.writer.shutdown(Shutdown::Both);
    }
}

/// Asks the server what it offers (`describe` → `info`).
pub fn describe(settings: &Settings) -> Result<Offer, PluginError> {
    let mut call = connect(settings)?;
    call.send(&Event::new("describe", json!({})))?;
    let info = call.receive_until("info")?;
    let list = |key: &str, inner: &str| -> Vec<(String, Vec<String>)> {
        let services = info.data.get(key).and_then(|v| v.as_array());
        let items = services.into_iter().flatten().flat_map(|service| {
            service
                .get(inner)
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default()
        });
        items
            .filter(|item| item.get("installed").and_then(|v| v.as_bool()) != Some(false))
            .map(|item| {
                let name = item.get("name").and_then(|v| v.as_str()).unwrap_or("");
                let languages = item
                    .get("languages")
                    .and_then(|v| v.as_array())
                    .map(|l| {
                        l.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                (name.to_string(), languages)
            })
            .collect()
    };
    Ok(Offer {
        asr: list("asr", "models"),
        tts: list("tts", "voices"),
    })
}
