//! Log levels and filters as people write them: `warning`, `WARN`, `err`, `openclaw_voice=debug`
//! are turned into what the tracing filter understands; anything else is refused with the
//! spellings that work. (A bare word the filter does not know as a level is read by tracing
//! as a *target* name, which silently turns every other log line off.)

/// Levels and the spellings accepted for each.
const LEVELS: &[(&str, &[&str])] = &[
    ("trace", &["trace"]),
    ("debug", &["debug"]),
    ("info", &["info", "information", "notice"]),
    ("warn", &["warn", "warning"]),
    ("error", &["error", "err", "critical", "crit", "fatal"]),
    ("off", &["off", "none", "silent"]),
];

/// One level spelling → the tracing name (`Warning` → `warn`), or `None`.
fn level(word: &str) -> Option<&'static str> {
    let word = word.trim().to_ascii_lowercase();
    LEVELS
        .iter()
        .find(|(_, spellings)| spellings.contains(&word.as_str()))
        .map(|(name, _)| *name)
}

/// A filter (`warning`, or `info,openclaw_voice::pipeline=debug`) in tracing's spelling, or
/// why it cannot be one.
pub fn normalize_filter(text: &str) -> Result<String, String> {
    let mut out = Vec::new();
    for directive in text.split(',').map(str::trim) {
        if directive.is_empty() {
            continue;
        }
        match directive.rsplit_once('=') {
            Some((target, lvl)) => {
                let target = target.trim();
                let valid_target = !target.is_empty()
                    && target
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_:-".contains(c));
                if !valid_target {
                    return Err(format!(
                        "`{directive}`: `{target}` is not a module path like openclaw_voice::pipeline"
                    ));
                }
                let lvl = level(lvl).ok_or_else(|| unknown(lvl))?;
                out.push(format!("{target}={lvl}"));
            }
            None => out.push(level(directive).ok_or_else(|| unknown(directive))?.into()),
        }
    }
    if out.is_empty() {
        return Err(unknown(text));
    }
    Ok(out.join(","))
}

fn unknown(word: &str) -> String {
    format!(
        "`{}` is not a log level: use trace, debug, info, warn (or warning), error or off, \
         optionally per module (`info,openclaw_voice::pipeline=debug`)",
        word.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::EnvFilter;

    fn max_level(text: &str) -> Option<LevelFilter> {
        EnvFilter::try_new(normalize_filter(text).unwrap())
            .unwrap()
            .max_level_hint()
    }

    #[test]
    fn the_usual_spellings_mean_their_level() {
        assert_eq!(max_level("warning"), Some(LevelFilter::WARN));
        assert_eq!(max_level("WARN"), Some(LevelFilter::WARN));
        assert_eq!(max_level("Error"), Some(LevelFilter::ERROR));
        assert_eq!(max_level("err"), Some(LevelFilter::ERROR));
        assert_eq!(max_level("info"), Some(LevelFilter::INFO));
        assert_eq!(max_level("off"), Some(LevelFilter::OFF));
        assert_eq!(
            normalize_filter("warning, openclaw_voice::pipeline=DEBUG").unwrap(),
            "warn,openclaw_voice::pipeline=debug"
        );
    }

    #[test]
    fn a_bare_unknown_word_is_refused_not_read_as_a_target() {
        // What tracing alone does with `warning`: a filter for a target called "warning",
        // under which warnings and errors of every module are dropped.
        assert_eq!(
            EnvFilter::try_new("warning").unwrap().max_level_hint(),
            Some(LevelFilter::TRACE)
        );
        for bad in [
            "verbose", "warnings", "", " , ", "=debug", "a b=info", "x=loud",
        ] {
            let e = normalize_filter(bad).unwrap_err();
            assert!(e.contains("not"), "{bad}: {e}");
        }
        assert!(normalize_filter("verbose")
            .unwrap_err()
            .contains("warn (or warning)"));
    }
}
