//! The 0.1.0 host's plugin loader, unchanged in what it checks (host/src/plugins/loader.rs at
//! commit 3d5b027): abi_stable's header, the plugin-api version from the header, the root
//! module's layout, `init`, then `info` and the version the plugin reports.
//!
//! `host-0-1-0 LIBRARY` prints `loaded NAME VERSION api API` and transcribes one second of
//! audio, or prints `refused: REASON` and exits 1.

use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::std_types::RStr;
use plugin_api::abi::{
    HostContext, LogLevel, Pcm16kMono, PluginModule_Ref, TranscribeOptions, API_VERSION,
};

extern "C" fn log(_: LogLevel, _: RStr<'_>, _: RStr<'_>, _: RStr<'_>) {}

fn api_compatible(plugin: &str, host: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut it = v.split('.');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    match (parse(plugin), parse(host)) {
        (Some((pm, pn)), Some((hm, hn))) => pm == hm && (hm != 0 || pn == hn),
        _ => false,
    }
}

fn load(path: &std::path::Path) -> Result<String, String> {
    let header = lib_header_from_path(path).map_err(|e: LibraryError| e.to_string())?;
    let built_against = header.version_strings().version.as_str();
    if !api_compatible(built_against, API_VERSION) {
        return Err(format!(
            "built against plugin-api {built_against}, but this host uses {API_VERSION}; rebuild \
             the plugin against plugin-api {API_VERSION}"
        ));
    }
    let module = header
        .init_root_module::<PluginModule_Ref>()
        .map_err(|e| e.to_string())?;
    (module.init())(HostContext {
        log,
        max_level: LogLevel::Error,
    });
    let info = (module.info())()
        .into_result()
        .map_err(|e| format!("the plugin failed to describe itself: {e}"))?;
    if info.api_version.as_str() != API_VERSION
        && !api_compatible(info.api_version.as_str(), API_VERSION)
    {
        return Err(format!(
            "built against plugin-api {}, but this host uses {API_VERSION}; rebuild the plugin \
             against plugin-api {API_VERSION}",
            info.api_version
        ));
    }
    let stt = (module.new_stt())(RStr::from_str(""))
        .into_result()
        .map_err(|e| format!("new_stt: {e}"))?;
    let samples = vec![1i16; 16_000];
    let text = stt
        .transcribe(Pcm16kMono::new(&samples), &TranscribeOptions::default())
        .into_result()
        .map_err(|e| format!("transcribe: {e}"))?;
    Ok(format!(
        "loaded {} {} api {}\ntranscript: {}",
        info.name, info.version, info.api_version, text.text
    ))
}

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: host-0-1-0 LIBRARY");
        std::process::exit(2);
    };
    match load(std::path::Path::new(&path)) {
        Ok(report) => println!("{report}"),
        Err(reason) => {
            println!("refused: {reason}");
            std::process::exit(1);
        }
    }
}
