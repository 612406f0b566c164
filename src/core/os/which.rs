//! `exec.which(name [, path])`: the lookup the library itself makes before
//! it starts a program by a bare name (command::find_program), for callers
//! who want to know what would run, or whether anything would.

use std::ffi::OsStr;
use std::path::PathBuf;

use crate::core::command;
use crate::core::error::Error;

/// The absolute path `name` runs as: found in `path` (a PATH-style list;
/// default: our PATH, else /bin:/usr/bin), or, with a `/` in it, checked
/// as it is. Relative entries (and relative names) are taken from our
/// current directory. ENOENT when nothing is found, EACCES when only
/// files that cannot be executed are.
pub fn which(name: &OsStr, path: Option<&OsStr>) -> Result<PathBuf, Error> {
    let path = path.map(OsStr::to_os_string).unwrap_or_else(|| command::child_path(None));
    let found = command::find_program(name, &path, None)?;
    if found.is_absolute() {
        return Ok(found);
    }
    let cwd = std::env::current_dir().map_err(|e| Error::os("cannot resolve a relative path", &e))?;
    Ok(cwd.join(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_finds_what_would_run_and_says_why_nothing_would() {
        let sh = which(OsStr::new("sh"), Some(OsStr::new("/nonexistent:/bin:/usr/bin"))).unwrap();
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        let e = which(OsStr::new("no-such-program-here"), Some(OsStr::new("/bin"))).unwrap_err();
        assert_eq!(e.code(), "ENOENT");
        assert!(e.to_string().contains("not found in PATH (/bin)"), "{e}");
        // Not executable: /etc/passwd by name from /etc.
        let e = which(OsStr::new("passwd"), Some(OsStr::new("/etc"))).unwrap_err();
        assert_eq!(e.code(), "EACCES", "{e}");
        // A relative path with a slash is made absolute.
        let here = which(OsStr::new("./../../../../../../../../bin/sh"), None).unwrap();
        assert!(here.is_absolute(), "{}", here.display());
    }
}
