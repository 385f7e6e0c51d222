//! A valid shared library that is not an OpenClaw Voice plugin: it exports an ordinary C
//! function and no abi_stable root module, so the host must refuse it as "not a plugin"
//! (a missing symbol) instead of crashing.

/// Returns 42. Exists only so the library exports something.
#[no_mangle]
pub extern "C" fn openclaw_test_not_a_plugin_answer() -> u32 {
    42
}
