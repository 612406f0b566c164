//! What a restricted executor promises its owner (README, "Security").
//!
//! The attacker is Lua code that holds a restricted executor (a resource
//! with a `command_whitelist`, an `allowed_env` or a `work_dir_within`) and
//! the processes it made, and nothing else. These checks decide what that
//! code may make the host run:
//! - a whitelisted command runs the program the owner meant: program names
//!   are resolved with the resource's own PATH, never with the caller's
//!   `env` or relative to the caller's `work_dir`;
//! - the caller's `env` cannot name a variable that changes what runs or
//!   what it loads (`blocked_env`), or, with `allowed_env`, any name the
//!   owner did not list;
//! - the caller's `work_dir` must resolve inside `work_dir_within`;
//! - on a resource with a whitelist or a `work_dir_within`, a caller's
//!   path redirections (`stdout = { path = }`) lead only beneath
//!   `work_dir_within` (resolved by the kernel as the file is opened, see
//!   os/open.rs), and neither the host's own stdio ("inherit") nor the
//!   host's environment (`inherit_env`) is given unless the owner said so.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::command::{self, shown_path, Bytes};
use crate::core::os::spawn::Within;

/// Variables that change which program runs or what it loads: the dynamic
/// loader's, the shells' start-up and parsing, and the common interpreters'
/// and tools' search paths and hooks. The list cannot be complete for every
/// program a whitelist may name: `allowed_env` is the exact tool.
pub const BLOCKED_ENV: &[&str] = &[
    "PATH", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "IFS", "CDPATH", "GLOBIGNORE", "PS4",
    "PROMPT_COMMAND", "GCONV_PATH", "GLIBC_TUNABLES", "LOCPATH", "NLSPATH", "HOSTALIASES",
    "MALLOC_TRACE", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONINSPECT",
    "PYTHONUSERBASE", "PERL5LIB", "PERL5OPT", "PERLLIB", "RUBYLIB", "RUBYOPT", "NODE_OPTIONS",
    "NODE_PATH", "LUA_PATH", "LUA_CPATH", "LUA_INIT", "MAKEFLAGS", "MAKEFILES", "MFLAGS",
    "GIT_EXEC_PATH", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_PAGER", "GIT_EDITOR", "GIT_ASKPASS",
    "EDITOR", "VISUAL", "PAGER", "SSH_ASKPASS", "SUDO_ASKPASS",
];

/// Prefixes of such variables (`LD_PRELOAD`, bash's exported functions...).
pub const BLOCKED_ENV_PREFIXES: &[&str] =
    &["LD_", "BASH_FUNC_", "DYLD_", "LUA_PATH_", "LUA_CPATH_", "LUA_INIT_", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"];

/// Whether `name` is one of the variables above.
pub fn is_blocked_env(name: &OsStr) -> bool {
    let n = name.as_bytes();
    BLOCKED_ENV.iter().any(|b| b.as_bytes() == n) || BLOCKED_ENV_PREFIXES.iter().any(|p| n.starts_with(p.as_bytes()))
}

/// A resource's restrictions.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub whitelist: Vec<Bytes>,
    pub allowed_env: Option<Vec<Bytes>>,
    pub work_dir_within: Option<PathBuf>,
}

impl Policy {
    pub fn restricts_programs(&self) -> bool {
        !self.whitelist.is_empty()
    }

    /// Whether the caller's stdio and environment options are restricted
    /// (see the module comment): a whitelist or a work_dir_within.
    pub fn restricts_stdio(&self) -> bool {
        self.restricts_programs() || self.work_dir_within.is_some()
    }

    /// A caller's path redirection of `stream` on resource `id`: where it
    /// may lead, for a process whose working directory is `work_dir`
    /// (`None`: ours). `None` when the resource does not restrict paths.
    pub fn check_redirect(&self, stream: &str, path: &Path, work_dir: Option<&Path>, id: &str) -> Result<Option<Within>, String> {
        if !self.restricts_stdio() {
            return Ok(None);
        }
        let shown = shown_path(path);
        let Some(root) = &self.work_dir_within else {
            return Err(format!(
                "{stream}: path '{shown}' cannot be used on '{id}': it has a command_whitelist and no work_dir_within, \
                 the only place a path redirection may lead"
            ));
        };
        let real_root = std::fs::canonicalize(root)
            .map_err(|e| format!("work_dir_within '{}' of '{id}': {}", shown_path(root), crate::core::os::sys::describe(&e)))?;
        let rule = format!("the work_dir_within of '{id}' ({})", shown_path(&real_root));
        let rel = if path.is_absolute() {
            // (Lexically inside; the open resolves `..` and symlinks.)
            match path.strip_prefix(&real_root).or_else(|_| path.strip_prefix(root)) {
                Ok(rel) => rel.to_path_buf(),
                Err(_) => return Err(format!("{stream}: path '{shown}' is outside {rule}")),
            }
        } else {
            let base = match work_dir {
                Some(d) => d.to_path_buf(),
                None => std::env::current_dir().map_err(|e| format!("{stream}: {}", crate::core::os::sys::describe(&e)))?,
            };
            let real_base = std::fs::canonicalize(&base).unwrap_or(base);
            match real_base.strip_prefix(&real_root) {
                Ok(dir) => dir.join(path),
                Err(_) => {
                    return Err(format!(
                        "{stream}: relative path '{shown}' needs a work_dir inside {rule} (the process would run in '{}')",
                        shown_path(&real_base)
                    ))
                }
            }
        };
        if rel.as_os_str().is_empty() {
            return Err(format!("{stream}: path '{shown}' names the work_dir_within itself, not a file"));
        }
        Ok(Some(Within { root: real_root, rel, rule }))
    }

    /// The caller's `env` on resource `id`.
    pub fn check_env(&self, env: &[(Bytes, Bytes)], id: &str) -> Result<(), String> {
        for (k, _) in env {
            let shown = command::shown(k.as_bytes());
            match &self.allowed_env {
                Some(allowed) if !allowed.iter().any(|a| a == k) => {
                    return Err(format!("env variable '{shown}' is not in the allowed_env of '{id}'"));
                }
                Some(_) => {}
                None if self.restricts_programs() && is_blocked_env(k) => {
                    return Err(format!(
                        "env variable '{shown}' cannot be set on '{id}': it changes what runs or what it loads \
                         (the resource has a command_whitelist; its owner can allow it with allowed_env)"
                    ));
                }
                None => {}
            }
        }
        Ok(())
    }

    /// The caller's `work_dir` on resource `id`: inside `work_dir_within`
    /// once symlinks are resolved. Returns the directory to use (resolved,
    /// so that what was checked is what the child gets).
    pub fn check_work_dir(&self, dir: &Path, id: &str) -> Result<PathBuf, String> {
        let Some(root) = &self.work_dir_within else { return Ok(dir.to_path_buf()) };
        let shown = shown_path(dir);
        let real = std::fs::canonicalize(dir).map_err(|e| format!("work_dir '{shown}': {}", crate::core::os::sys::describe(&e)))?;
        let real_root = std::fs::canonicalize(root)
            .map_err(|e| format!("work_dir_within '{}' of '{id}': {}", shown_path(root), crate::core::os::sys::describe(&e)))?;
        if !real.starts_with(&real_root) {
            return Err(format!(
                "work_dir '{shown}' is outside the work_dir_within of '{id}' ({})",
                shown_path(&real_root)
            ));
        }
        Ok(real)
    }

    /// The program a whitelisted argv command runs, found the owner's way:
    /// a bare name in `path` (the resource's PATH), a relative path in the
    /// resource's `default_work_dir`. Always an absolute path, so that the
    /// caller's `work_dir` cannot change what it names.
    pub fn resolve_program(&self, program: &OsStr, path: &OsStr, default_dir: Option<&Path>, id: &str) -> Result<PathBuf, String> {
        let p = program.as_bytes();
        let relative_with_slash = p.contains(&b'/') && !p.starts_with(b"/");
        let base = match default_dir {
            Some(d) => d.to_path_buf(),
            None if relative_with_slash => {
                return Err(format!(
                    "program '{}' is a relative path: '{id}' has a command_whitelist and no default_work_dir to resolve it in",
                    command::shown(program.as_bytes())
                ))
            }
            None => std::env::current_dir().map_err(|e| format!("cannot resolve programs: {}", crate::core::os::sys::describe(&e)))?,
        };
        let found = command::resolve_program(program, path, Some(&base))?;
        Ok(if found.is_absolute() { found } else { base.join(found) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: Option<&[&str]>) -> Policy {
        Policy {
            whitelist: vec!["make".into()],
            allowed_env: allowed.map(|a| a.iter().map(|s| Bytes::from(*s)).collect()),
            work_dir_within: None,
        }
    }

    #[test]
    fn a_whitelist_blocks_variables_that_change_what_runs() {
        let p = policy(None);
        for name in ["PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "ENV", "IFS", "BASH_FUNC_make%%"] {
            let e = p.check_env(&[(name.into(), "x".into())], "a:b").unwrap_err();
            assert!(e.contains(name), "{e}");
        }
        assert!(p.check_env(&[("CFLAGS".into(), "-O2".into())], "a:b").is_ok());
        // Without a whitelist nothing is blocked.
        assert!(Policy::default().check_env(&[("PATH".into(), "/x".into())], "a:b").is_ok());
    }

    #[test]
    fn allowed_env_lists_every_name_a_caller_may_set() {
        let p = policy(Some(&["CFLAGS", "PATH"]));
        assert!(p.check_env(&[("CFLAGS".into(), "x".into()), ("PATH".into(), "/x".into())], "a:b").is_ok());
        let e = p.check_env(&[("HOME".into(), "/".into())], "a:b").unwrap_err();
        assert!(e.contains("not in the allowed_env of 'a:b'"), "{e}");
    }

    #[test]
    fn work_dir_must_resolve_inside_the_root() {
        let root = std::env::temp_dir().join(format!("lua-exec-policy-{}", std::process::id()));
        let inside = root.join("inside");
        std::fs::create_dir_all(&inside).unwrap();
        let link = root.join("escape");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/etc", &link).unwrap();
        let p = Policy { work_dir_within: Some(root.clone()), ..Default::default() };
        assert!(p.check_work_dir(&inside, "a:b").is_ok());
        let e = p.check_work_dir(&link, "a:b").unwrap_err();
        assert!(e.contains("outside the work_dir_within"), "{e}");
        assert!(p.check_work_dir(&root.join("inside/../../"), "a:b").is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn whitelisted_programs_are_found_with_the_resources_path_only() {
        let p = policy(None);
        let sh = p.resolve_program(OsStr::new("sh"), OsStr::new("/bin:/usr/bin"), None, "a:b").unwrap();
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        let e = p.resolve_program(OsStr::new("./make"), OsStr::new("/bin"), None, "a:b").unwrap_err();
        assert!(e.contains("relative path"), "{e}");
    }
}
