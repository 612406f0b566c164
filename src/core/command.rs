//! What to run: the command, its environment and its directory, validated.
//!
//! Pure data and checks, no system calls beyond `stat`/`access` for the PATH
//! lookup, so every rule here is unit-tested directly.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::core::error::Error;

/// Text handed to the system: any bytes but NUL (Lua strings are bytes, and
/// so are Unix file names, arguments and environments).
pub type Bytes = OsString;

fn has_nul(s: &OsStr) -> bool {
    s.as_bytes().contains(&0)
}

/// At most this many bytes of a caller's value are shown in a message: a
/// 1 MiB argument must not make a 1 MiB error.
pub const SHOWN_MAX: usize = 200;

/// A caller's bytes as messages show them: as UTF-8 (invalid bytes
/// replaced), cut after SHOWN_MAX bytes with "... (N bytes)".
pub fn shown(b: &[u8]) -> String {
    if b.len() <= SHOWN_MAX {
        return String::from_utf8_lossy(b).into_owned();
    }
    // (A character cut in two shows as one replacement character.)
    format!("{}... ({} bytes)", String::from_utf8_lossy(&b[..SHOWN_MAX]), b.len())
}

/// `shown` for a path.
pub fn shown_path(p: &Path) -> String {
    shown(p.as_os_str().as_bytes())
}

fn lossy(s: &OsStr) -> String {
    shown(s.as_bytes())
}

/// The default search path when the child's environment has no PATH, the
/// same one `execvp` uses on glibc.
pub const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// A command as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandSpec {
    /// Run through `/bin/sh -c`, exactly as typed.
    Shell(Bytes),
    /// Run the program directly with these arguments; no shell involved.
    Argv(Vec<Bytes>),
}

impl CommandSpec {
    /// A shell command, checked: the one place the rule is stated (the
    /// rest of the code takes a CommandSpec made here as valid).
    pub fn shell(s: Bytes) -> Result<CommandSpec, String> {
        let c = CommandSpec::Shell(s);
        c.validate()?;
        Ok(c)
    }

    /// A program and its arguments, checked (see `shell`).
    pub fn program(args: Vec<Bytes>) -> Result<CommandSpec, String> {
        let c = CommandSpec::Argv(args);
        c.validate()?;
        Ok(c)
    }

    /// A command is not empty and holds no NUL byte.
    fn validate(&self) -> Result<(), String> {
        match self {
            CommandSpec::Shell(s) => {
                if s.is_empty() {
                    return Err("must not be empty".into());
                }
                if has_nul(s) {
                    return Err("contains a NUL byte".into());
                }
            }
            CommandSpec::Argv(args) => {
                if args.is_empty() {
                    return Err("must not be an empty table".into());
                }
                if args[0].is_empty() {
                    return Err("command[1] (the program) must not be empty".into());
                }
                if let Some(i) = args.iter().position(|a| has_nul(a)) {
                    return Err(format!("command[{}] contains a NUL byte", i + 1));
                }
            }
        }
        Ok(())
    }

    /// The text compared against an executor's whitelist: a string as typed,
    /// a table as its arguments joined by single spaces.
    pub fn whitelist_key(&self) -> Bytes {
        match self {
            CommandSpec::Shell(s) => s.clone(),
            CommandSpec::Argv(a) => {
                let parts: Vec<&[u8]> = a.iter().map(|x| x.as_bytes()).collect();
                OsString::from_vec(parts.join(&b' '))
            }
        }
    }

    /// The argv the child receives.
    pub fn argv(&self) -> Vec<Bytes> {
        match self {
            CommandSpec::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
            CommandSpec::Argv(a) => a.clone(),
        }
    }

    /// A short name for messages: the program, or the shell command.
    pub fn describe(&self) -> String {
        lossy(&self.whitelist_key())
    }
}

/// Quote `s` for POSIX sh: safe for every byte but NUL.
pub(crate) fn quote(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'\'');
    for &b in s {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// Environment entries (`env`, `default_env`), checked when made: the rest
/// of the code takes an `Env` as valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env(Vec<(Bytes, Bytes)>);

impl Env {
    /// `label` names the option in messages.
    pub fn new(label: &str, entries: Vec<(Bytes, Bytes)>) -> Result<Env, String> {
        for (k, v) in &entries {
            validate_env_entry(label, k, v)?;
        }
        Ok(Env(entries))
    }
}

impl std::ops::Deref for Env {
    type Target = [(Bytes, Bytes)];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Check one environment entry; `label` names the option in messages
/// (`env`, `default_env`).
fn validate_env_entry(label: &str, key: &OsStr, value: &OsStr) -> Result<(), String> {
    if key.is_empty() {
        return Err(format!("{label} has an empty variable name"));
    }
    if key.as_bytes().contains(&b'=') {
        return Err(format!("{label} variable name '{}' contains '='", lossy(key)));
    }
    if has_nul(key) {
        return Err(format!("{label} variable name contains a NUL byte"));
    }
    if has_nul(value) {
        return Err(format!("{label} value of '{}' contains a NUL byte", lossy(key)));
    }
    Ok(())
}

/// The child's environment: `None` inherits the parent's. Otherwise
/// `defaults` overlaid with `overrides`, over our own environment when
/// `inherit` (else over nothing), in a stable (sorted) order.
pub fn merge_env(
    inherit: bool,
    defaults: Option<&[(Bytes, Bytes)]>,
    overrides: Option<&[(Bytes, Bytes)]>,
) -> Option<Vec<(Bytes, Bytes)>> {
    if defaults.is_none() && overrides.is_none() {
        return None;
    }
    let mut map = std::collections::BTreeMap::new();
    if inherit {
        map.extend(std::env::vars_os());
    }
    for (k, v) in defaults.unwrap_or(&[]).iter().chain(overrides.unwrap_or(&[])) {
        map.insert(k.clone(), v.clone());
    }
    Some(map.into_iter().collect())
}

/// Whether `dir` is a directory, the one statement of the rule for
/// `work_dir` and `default_work_dir`: Ok, or "`label` '<dir>': <why>".
pub fn check_dir(label: &str, dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("{label} '{}': Not a directory", shown_path(dir))),
        Err(e) => Err(format!("{label} '{}': {}", shown_path(dir), crate::core::os::sys::describe(&e))),
    }
}

/// Find `program` the way the child would: a name with a `/` is taken as a
/// path (relative to `cwd` when given); a bare name is searched in `path`
/// (the PATH the child will see). Returns the path to execute.
pub fn resolve_program(program: &OsStr, path: &OsStr, cwd: Option<&Path>) -> Result<PathBuf, String> {
    find_program(program, path, cwd).map_err(|e| e.to_string())
}

/// `resolve_program`, with the failure as the core's error: the errno of
/// the reason (ENOENT: not found, EACCES: not executable, ...).
pub fn find_program(program: &OsStr, path: &OsStr, cwd: Option<&Path>) -> Result<PathBuf, Error> {
    let err = |message: String, errno: i32| Error::Os { message, errno };
    let shown = lossy(program);
    if program.as_bytes().contains(&b'/') {
        // Checked here rather than left to exec, so that the error names the
        // program the same way everywhere (posix_spawn under some emulators,
        // valgrind among them, reports a failed exec only as exit code 127).
        let path = match cwd {
            Some(dir) if !program.as_bytes().starts_with(b"/") => dir.join(program),
            _ => PathBuf::from(program),
        };
        return match std::fs::metadata(&path) {
            Err(e) => Err(Error::os(format_args!("cannot run '{shown}'"), &e)),
            Ok(m) if m.is_dir() => Err(err(format!("cannot run '{shown}': Is a directory"), libc::EISDIR)),
            Ok(_) if !is_executable(&path) => Err(err(format!("cannot run '{shown}': Permission denied"), libc::EACCES)),
            Ok(_) => Ok(PathBuf::from(program)),
        };
    }
    // One buffer for every candidate, NUL-terminated for the system calls:
    // this runs before every spawn of a bare name, and a PATH has several
    // entries (a PathBuf and a CString per entry cost more than the stats).
    let mut denied = None;
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    for dir in path.as_bytes().split(|b| *b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        buf.clear();
        if let (Some(cwd), false) = (cwd, dir.starts_with(b"/")) {
            join_into(&mut buf, cwd.as_os_str().as_bytes());
        }
        join_into(&mut buf, dir);
        join_into(&mut buf, program.as_bytes());
        buf.push(0);
        match candidate_kind(&buf) {
            Candidate::Runnable => {
                buf.pop();
                return Ok(PathBuf::from(OsString::from_vec(buf)));
            }
            Candidate::Denied => {
                denied.get_or_insert_with(|| PathBuf::from(OsStr::from_bytes(&buf[..buf.len() - 1])));
            }
            Candidate::Absent => {}
        }
    }
    match denied {
        Some(p) => Err(err(format!("program '{shown}' ({}) is not executable: Permission denied", shown_path(&p)), libc::EACCES)),
        None => Err(err(
            format!("program '{shown}' not found in PATH ({}): No such file or directory", lossy(path)),
            libc::ENOENT,
        )),
    }
}

/// Append `part` to a path being built, with one `/` between (as
/// `PathBuf::push` does for a relative part).
fn join_into(buf: &mut Vec<u8>, part: &[u8]) {
    if !buf.is_empty() && buf.last() != Some(&b'/') {
        buf.push(b'/');
    }
    buf.extend_from_slice(part);
}

enum Candidate {
    /// A regular file this user may execute.
    Runnable,
    /// A regular file without execute permission.
    Denied,
    /// Nothing there, or not a regular file (a directory of that name).
    Absent,
}

/// What a PATH candidate is; `c_path` ends with its NUL.
fn candidate_kind(c_path: &[u8]) -> Candidate {
    // A NUL inside (from a PATH entry, which nothing else checks) would cut
    // the name short: no such file can exist.
    let Ok(c_path) = CStr::from_bytes_with_nul(c_path) else { return Candidate::Absent };
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `c_path` is a NUL-terminated path and `st` is a writable stat
    // buffer for the call.
    if unsafe { libc::stat(c_path.as_ptr(), st.as_mut_ptr()) } != 0 {
        return Candidate::Absent;
    }
    // SAFETY: stat returned 0, so it filled `st`.
    let mode = unsafe { st.assume_init() }.st_mode;
    if mode & libc::S_IFMT != libc::S_IFREG {
        return Candidate::Absent;
    }
    if may_execute(c_path) {
        Candidate::Runnable
    } else {
        Candidate::Denied
    }
}

fn is_executable(p: &Path) -> bool {
    CString::new(p.as_os_str().as_bytes()).is_ok_and(|c| may_execute(&c))
}

/// Whether this user may execute the file at `c_path`.
fn may_execute(c_path: &CStr) -> bool {
    // SAFETY: `c_path` is a NUL-terminated path that lives for the call.
    unsafe { libc::access(c_path.as_ptr(), libc::X_OK) == 0 }
}

/// The PATH value the child will see.
pub fn child_path(env: Option<&[(Bytes, Bytes)]>) -> Bytes {
    match env {
        Some(vars) => vars
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| DEFAULT_PATH.into()),
        None => std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_nul_commands_are_rejected() {
        assert!(CommandSpec::shell(Bytes::new()).is_err());
        assert!(CommandSpec::shell("a\0b".into()).is_err());
        assert!(CommandSpec::program(vec![]).is_err());
        assert!(CommandSpec::program(vec!["".into()]).is_err());
        let e = CommandSpec::program(vec!["ls".into(), "a\0".into()]).unwrap_err();
        assert!(e.contains("command[2]"), "{e}");
        assert!(CommandSpec::shell("echo hi".into()).is_ok());
    }

    #[test]
    fn shell_commands_run_through_sh() {
        let c = CommandSpec::Shell("echo $X && pwd".into());
        assert_eq!(c.argv(), vec!["/bin/sh", "-c", "echo $X && pwd"]);
        assert_eq!(c.whitelist_key(), "echo $X && pwd");
    }

    #[test]
    fn argv_whitelist_key_joins_with_single_spaces() {
        let c = CommandSpec::Argv(vec!["ls".into(), "-l".into(), "/tmp".into()]);
        assert_eq!(c.whitelist_key(), "ls -l /tmp");
    }

    #[test]
    fn env_entries_are_checked() {
        let e = |k: &str, v: &str| validate_env_entry("env", OsStr::new(k), OsStr::new(v));
        assert!(e("", "x").is_err());
        assert!(e("A=B", "x").is_err());
        assert!(e("A", "x\0").is_err());
        assert!(e("A", "").is_ok());
        // Any other bytes are fine: environments are bytes.
        assert!(validate_env_entry("env", OsStr::from_bytes(b"K\xff"), OsStr::from_bytes(b"\xfe")).is_ok());
    }

    #[test]
    fn env_is_defaults_overlaid_with_overrides_or_inherited() {
        assert_eq!(merge_env(false, None, None), None);
        let d: Vec<(Bytes, Bytes)> = vec![("A".into(), "1".into()), ("B".into(), "2".into())];
        let o: Vec<(Bytes, Bytes)> = vec![("B".into(), "3".into())];
        let m = merge_env(false, Some(&d), Some(&o)).unwrap();
        assert_eq!(m, vec![("A".into(), "1".into()), ("B".into(), "3".into())]);
        assert_eq!(merge_env(false, None, Some(&o)).unwrap(), o);
    }

    #[test]
    fn programs_are_found_in_the_childs_path() {
        let r = |p: &str, path: &str| resolve_program(OsStr::new(p), OsStr::new(path), None);
        assert_eq!(r("sh", "/nonexistent:/bin").unwrap(), PathBuf::from("/bin/sh"));
        let e = r("no-such-program-xyz", "/bin:/usr/bin").unwrap_err();
        assert!(e.contains("no-such-program-xyz") && e.contains("not found"), "{e}");
        assert_eq!(r("/bin/sh", "").unwrap(), PathBuf::from("/bin/sh"));
        let e = r("./no-such-x", "").unwrap_err();
        assert!(e.contains("'./no-such-x'") && e.contains("No such file"), "{e}");
        let e = r("/tmp", "").unwrap_err();
        assert!(e.contains("Is a directory"), "{e}");
    }

    #[test]
    fn path_entries_are_searched_in_order_relative_to_the_work_dir() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("exec-resolve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["denied", "dir/prog", "run"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let put = |p: &str, mode: u32| {
            std::fs::write(root.join(p), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(root.join(p), std::fs::Permissions::from_mode(mode)).unwrap();
        };
        put("denied/prog", 0o644);
        put("run/prog", 0o755);
        let r = |path: &str| resolve_program(OsStr::new("prog"), OsStr::new(path), Some(&root));
        // A directory of that name is skipped, a file without execute
        // permission is remembered, the first runnable one wins; relative
        // entries (and an empty one, the current directory) start at the
        // work directory, and a trailing slash adds no second one.
        assert_eq!(r("dir:denied:run/").unwrap(), root.join("run/prog"));
        assert_eq!(r(&format!("{}/run", root.display())).unwrap(), root.join("run/prog"));
        let e = r("dir:denied").unwrap_err();
        assert!(e.contains("denied/prog") && e.contains("Permission denied"), "{e}");
        let e = r("dir::nothing").unwrap_err();
        assert!(e.contains("not found in PATH (dir::nothing)"), "{e}");
        // A NUL in an entry cannot name a file.
        let with_nul = OsString::from_vec(b"run\0x".to_vec());
        assert!(resolve_program(OsStr::new("prog"), &with_nul, Some(&root)).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn child_path_defaults_when_env_lacks_path() {
        let env: Vec<(Bytes, Bytes)> = vec![("HOME".into(), "/".into())];
        assert_eq!(child_path(Some(&env)), DEFAULT_PATH);
        let env: Vec<(Bytes, Bytes)> = vec![("PATH".into(), "/x".into())];
        assert_eq!(child_path(Some(&env)), "/x");
    }
}
