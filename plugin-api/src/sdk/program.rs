//! Finding a program a plugin runs (espeak-ng for the `espeak` and `piper` plugins) the way a
//! shell would, so a setting can name it or give its path.

use std::path::{Path, PathBuf};

/// `program` as a shell finds it: a name with a `/` is a path, anything else is looked up on
/// `PATH`; only an executable file counts. `None` when there is none (or `program` is empty).
///
/// ```
/// use plugin_api::sdk::find_program;
/// assert!(find_program("sh").is_some());
/// assert!(find_program("/nonexistent/program").is_none());
/// ```
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        let path = PathBuf::from(program);
        return is_executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_executable_is_not_a_program() {
        let file =
            std::env::temp_dir().join(format!("openclaw-not-a-program-{}", std::process::id()));
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        let found = find_program(file.to_str().unwrap());
        std::fs::remove_file(&file).unwrap();
        assert_eq!(found, None);
        assert_eq!(find_program(""), None);
        assert_eq!(find_program("openclaw-no-such-program-on-path"), None);
    }
}
