//! Routes whisper.cpp's and ggml's own log output (model loading, buffer sizes, timings) away
//! from stderr and into the `log` crate at debug level, so it reaches the host's log bridge
//! under the plugin's name instead of interleaving with the host's output.
//!
//! whisper-rs has `install_logging_hooks`, but it keeps whisper.cpp's levels (every model load
//! logs a page at info level); this hook demotes everything to debug (continuation lines and
//! unknown levels to trace), which is what a host operator wants from a library.

use std::ffi::{c_char, c_void, CStr};
use std::sync::Once;

/// The `log` target the messages are logged under.
pub const TARGET: &str = "whisper_cpp";

static INSTALL: Once = Once::new();

/// Installs the hook. Idempotent; call it before the first model load.
pub fn install() {
    INSTALL.call_once(|| {
        // SAFETY: `forward` is an `extern "C"` function that never unwinds (it catches
        // panics) and only reads the NUL-terminated string whisper.cpp hands it for the
        // duration of the call; it needs no user data.
        unsafe { whisper_rs::set_log_callback(Some(forward), std::ptr::null_mut()) };
    });
}

/// ggml's `GGML_LOG_LEVEL_CONT`: the continuation of the previous message.
const GGML_LOG_LEVEL_CONT: u32 = 5;

unsafe extern "C" fn forward(level: u32, text: *const c_char, _user_data: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: whisper.cpp passes a valid NUL-terminated string that lives for this call.
    let message = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let _ = std::panic::catch_unwind(|| {
        let message = message.trim();
        if message.is_empty() {
            return;
        }
        if level == GGML_LOG_LEVEL_CONT {
            log::trace!(target: TARGET, "{message}");
        } else {
            log::debug!(target: TARGET, "{message}");
        }
    });
}
