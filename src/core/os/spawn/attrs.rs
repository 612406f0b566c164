//! What a child may be given beyond its command, environment, directory and
//! standard streams: resource limits, an identity (uid, gid, supplementary
//! groups), a umask, a niceness, death with its parent, and descriptors
//! beyond 0-2 (`fds`). Python's `subprocess`, Rust's `Command` and libuv
//! offer the same.
//!
//! posix_spawn can set none of these (but argv[0], which is only the
//! argument list): a request that asks for any of them starts on the fork
//! path (fork.rs), and every other keeps the posix_spawn fast path.
//! Everything is prepared here, in the parent (names resolved to numbers,
//! files opened, descriptors moved out of the way); between fork and exec
//! the child only makes system calls, in this order (after the session or
//! group, and the standard streams):
//!
//! 1. the `fds` are put on their numbers, and every other descriptor from 3
//!    up is closed;
//! 2. the resource limits (`setrlimit`), the umask, the niceness
//!    (`setpriority`): while the child still has our privileges, so that a
//!    root parent may raise a hard limit or lower the niceness;
//! 3. the supplementary groups (`setgroups`; with `uid` and no `groups`,
//!    they are cleared, as Rust's `Command` does, so that a child switched
//!    from root to another user keeps no group of root's), then `setgid`,
//!    then `setuid` (last: it drops the right to do the others);
//! 4. `PR_SET_PDEATHSIG` (after the identity: a change of credentials
//!    clears it), then a look at `getppid()`: if the parent died before the
//!    setting was made, the child is an orphan already and kills itself;
//! 5. the working directory (as the new user: a directory the user may not
//!    enter fails the start), then exec.
//!
//! A step that fails is reported to the parent as (step, argument, errno)
//! through the fork path's close-on-exec pipe; `start()` raises naming the
//! option, the value and the system call, with the system's reason, and the
//! core's error carries the errno (`Step::describe`).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::Redirect;
use crate::core::command;
use crate::core::os::sys::cvt;

/// The resource limits a caller may set, by their option names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Cpu,
    As,
    Fsize,
    Nofile,
    Nproc,
    Core,
    Stack,
}

#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

impl Limit {
    pub const ALL: [Limit; 7] = [Limit::Cpu, Limit::As, Limit::Fsize, Limit::Nofile, Limit::Nproc, Limit::Core, Limit::Stack];

    /// The name in `rlimits = { ... }`.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Cpu => "cpu",
            Limit::As => "as",
            Limit::Fsize => "fsize",
            Limit::Nofile => "nofile",
            Limit::Nproc => "nproc",
            Limit::Core => "core",
            Limit::Stack => "stack",
        }
    }

    pub fn named(name: &str) -> Option<Limit> {
        Limit::ALL.into_iter().find(|l| l.name() == name)
    }

    /// Whether its value is a size in bytes (and so takes "256m").
    pub fn is_size(self) -> bool {
        matches!(self, Limit::As | Limit::Fsize | Limit::Core | Limit::Stack)
    }

    fn resource(self) -> Resource {
        match self {
            Limit::Cpu => libc::RLIMIT_CPU,
            Limit::As => libc::RLIMIT_AS,
            Limit::Fsize => libc::RLIMIT_FSIZE,
            Limit::Nofile => libc::RLIMIT_NOFILE,
            Limit::Nproc => libc::RLIMIT_NPROC,
            Limit::Core => libc::RLIMIT_CORE,
            Limit::Stack => libc::RLIMIT_STACK,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The attributes a resource's owner may set as ceilings and a caller may
/// set (or tighten) per process. `None`: not set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    /// Per `Limit` (by its index): the value, soft and hard limit alike
    /// (cpu: the hard limit is a second more, see `ChildExtra::prepare`).
    pub rlimits: [Option<u64>; 7],
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The supplementary groups; `Some(empty)` clears them.
    pub groups: Option<Vec<u32>>,
    pub umask: Option<u32>,
    pub nice: Option<i32>,
    /// `Some(false)` only from a caller who said so (a resource's `true`
    /// cannot be turned off).
    pub kill_on_parent_death: Option<bool>,
}

impl Attrs {
    pub fn rlimit(&self, l: Limit) -> Option<u64> {
        self.rlimits[l.index()]
    }

    pub fn set_rlimit(&mut self, l: Limit, v: u64) {
        self.rlimits[l.index()] = Some(v);
    }

    /// Whether the child needs the fork path for these (posix_spawn sets
    /// none of them).
    pub fn needs_fork(&self) -> bool {
        self.rlimits.iter().any(Option::is_some)
            || self.uid.is_some()
            || self.gid.is_some()
            || self.groups.is_some()
            || self.umask.is_some()
            || self.nice.is_some()
            || self.kill_on_parent_death == Some(true)
    }

    /// The option names set here, for messages (a remote resource refuses them).
    pub fn names(&self) -> Vec<&'static str> {
        let mut n = Vec::new();
        if self.rlimits.iter().any(|r| r.is_some()) {
            n.push("rlimits");
        }
        for (set, name) in [
            (self.uid.is_some(), "uid"),
            (self.gid.is_some(), "gid"),
            (self.groups.is_some(), "groups"),
            (self.umask.is_some(), "umask"),
            (self.nice.is_some(), "nice"),
            (self.kill_on_parent_death.is_some(), "kill_on_parent_death"),
        ] {
            if set {
                n.push(name);
            }
        }
        n
    }

    /// A `uid` without a `gid` gets the user's primary group from the
    /// password database (as `su` does), not ours: a child switched from
    /// root to `nobody` must not keep root's group. A uid without an entry
    /// needs a gid.
    pub fn completed(mut self) -> Result<Attrs, String> {
        if let (Some(uid), None) = (self.uid, self.gid) {
            match primary_gid(uid)? {
                Some(g) => self.gid = Some(g),
                None => {
                    return Err(format!(
                        "uid = {uid} has no entry in the password database to take its group from: give gid too"
                    ))
                }
            }
        }
        Ok(self)
    }

    fn has_identity(&self) -> bool {
        self.uid.is_some() || self.gid.is_some() || self.groups.is_some()
    }

    /// What a process of resource `id` gets: the owner's values (`self`),
    /// tightened by the caller's. A caller may only tighten: a lower limit,
    /// a higher niceness, a umask with more bits; the identity is the
    /// owner's if the owner set any of uid, gid and groups (the caller may
    /// repeat it or leave it out), and kill_on_parent_death cannot be
    /// turned off. Anything the owner did not set, the caller may.
    pub fn tightened_by(&self, caller: &Attrs, id: &str) -> Result<Attrs, String> {
        let mut out = caller.clone();
        for l in Limit::ALL {
            match (self.rlimit(l), caller.rlimit(l)) {
                (Some(o), Some(c)) if c > o => {
                    return Err(format!(
                        "rlimits.{} = {c} is above the limit of '{id}' ({o}): a caller may only lower it",
                        l.name()
                    ))
                }
                (Some(o), None) => out.set_rlimit(l, o),
                _ => {}
            }
        }
        match (self.nice, caller.nice) {
            (Some(o), Some(c)) if c < o => {
                return Err(format!("nice = {c} is below the nice of '{id}' ({o}): a caller may only raise it"))
            }
            (Some(o), None) => out.nice = Some(o),
            _ => {}
        }
        match (self.umask, caller.umask) {
            (Some(o), Some(c)) if c & o != o => {
                return Err(format!(
                    "umask = {c:03o} lacks bits of the umask of '{id}' ({o:03o}): a caller may only add bits"
                ))
            }
            (Some(o), None) => out.umask = Some(o),
            _ => {}
        }
        if self.has_identity() {
            let owner = self.identity_words();
            let differs = |what: &str, given: String| {
                format!(
                    "{what} = {given} is not the identity of '{id}' ({owner}): a caller may give the same or none"
                )
            };
            if let Some(c) = caller.uid.filter(|c| Some(*c) != self.uid) {
                return Err(differs("uid", c.to_string()));
            }
            // The same is also what the child gets from the owner's `uid`
            // alone: that user's group, and no supplementary ones.
            let owner_gid = self.gid.or_else(|| self.uid.and_then(|u| primary_gid(u).ok().flatten()));
            if let Some(c) = caller.gid.filter(|c| Some(*c) != owner_gid) {
                return Err(differs("gid", c.to_string()));
            }
            let owner_groups = self.groups.clone().or_else(|| self.uid.map(|_| Vec::new()));
            if let Some(c) = caller.groups.as_ref().filter(|c| Some(*c) != owner_groups.as_ref()) {
                return Err(differs("groups", list_words(c)));
            }
            out.uid = self.uid;
            out.gid = self.gid;
            out.groups = self.groups.clone();
        }
        if self.kill_on_parent_death == Some(true) {
            if caller.kill_on_parent_death == Some(false) {
                return Err(format!(
                    "kill_on_parent_death = false is not allowed on '{id}': its owner set kill_on_parent_death = true"
                ));
            }
            out.kill_on_parent_death = Some(true);
        }
        Ok(out)
    }

    fn identity_words(&self) -> String {
        let mut w = Vec::new();
        if let Some(u) = self.uid {
            w.push(format!("uid = {u}"));
        }
        if let Some(g) = self.gid {
            w.push(format!("gid = {g}"));
        }
        if let Some(g) = &self.groups {
            w.push(format!("groups = {}", list_words(g)));
        }
        w.join(", ")
    }
}

/// A list of ids as messages show it (the first 16, then how many).
fn list_words(ids: &[u32]) -> String {
    let mut parts: Vec<String> = ids.iter().take(16).map(|g| g.to_string()).collect();
    if ids.len() > 16 {
        parts.push(format!("... ({} in all)", ids.len()));
    }
    format!("{{ {} }}", parts.join(", "))
}

/// A descriptor handed to the child at number `target` (`fds`).
#[derive(Debug, Clone)]
pub struct PassedFd {
    pub target: RawFd,
    pub source: Redirect,
    /// A path is opened for writing (created; truncated unless `append`),
    /// else for reading.
    pub write: bool,
}

/// The numbers `fds` may use: 3 up to this.
pub const MAX_TARGET_FD: RawFd = 65535;

/// A size: a whole number of bytes, or digits with a unit (b, k, m, g, t:
/// powers of 1024), as `"256m"`; `None` if it is not one.
pub fn parse_size(s: &[u8]) -> Option<u64> {
    let s: Vec<u8> = s.to_ascii_lowercase();
    let (digits, unit) = match s.last() {
        Some(c @ (b'b' | b'k' | b'm' | b'g' | b't')) => (&s[..s.len() - 1], *c),
        _ => (&s[..], b'b'),
    };
    if digits.is_empty() || !digits.iter().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let shift = match unit {
        b'k' => 10,
        b'm' => 20,
        b'g' => 30,
        b't' => 40,
        _ => 0,
    };
    n.checked_mul(1u64 << shift)
}

/// The uid of user `name` (the password database: files, NSS).
pub fn user_id(name: &[u8]) -> Result<u32, String> {
    lookup(name, "user", |c, buf, out| {
        // SAFETY: `c` is NUL-terminated; passwd is plain data, which
        // getpwnam_r fills, with the strings it points to in `buf` (of
        // `buf.len()` bytes); `res` gets a pointer to `pw` or null. Only the
        // number is read, while `pw` and `buf` live.
        unsafe {
            let mut pw: libc::passwd = std::mem::zeroed();
            let mut res: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut res);
            *out = (!res.is_null()).then_some(pw.pw_uid);
            rc
        }
    })
}

/// The gid of group `name` (the group database: files, NSS).
pub fn group_id(name: &[u8]) -> Result<u32, String> {
    lookup(name, "group", |c, buf, out| {
        // SAFETY: as in `user_id`, for getgrnam_r and a group entry.
        unsafe {
            let mut gr: libc::group = std::mem::zeroed();
            let mut res: *mut libc::group = std::ptr::null_mut();
            let rc = libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut res);
            *out = (!res.is_null()).then_some(gr.gr_gid);
            rc
        }
    })
}

/// The primary group of user `uid` (None: no such entry).
pub fn primary_gid(uid: u32) -> Result<Option<u32>, String> {
    let found = with_buffer(|buf, out| {
        // SAFETY: as in `user_id` (with a number for a name), for getpwuid_r.
        unsafe {
            let mut pw: libc::passwd = std::mem::zeroed();
            let mut res: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut res);
            *out = (!res.is_null()).then_some(pw.pw_gid);
            rc
        }
    });
    found.map_err(|e| format!("cannot look up uid {uid}: {}", crate::core::os::sys::describe(&e)))
}

/// One `get*nam_r` call, with a buffer that grows while it says ERANGE.
fn lookup(
    name: &[u8],
    what: &str,
    call: impl Fn(&CString, &mut Vec<u8>, &mut Option<u32>) -> libc::c_int,
) -> Result<u32, String> {
    let shown = command::shown(name);
    let c = CString::new(name).map_err(|_| format!("{what} name '{shown}' contains a NUL byte"))?;
    match with_buffer(|buf, out| call(&c, buf, out)) {
        Ok(found) => found.ok_or_else(|| format!("no {what} named '{shown}'")),
        Err(e) => Err(format!("cannot look up {what} '{shown}': {}", crate::core::os::sys::describe(&e))),
    }
}

/// Run a `get*_r` call with a buffer that grows while it says ERANGE.
fn with_buffer(call: impl Fn(&mut Vec<u8>, &mut Option<u32>) -> libc::c_int) -> io::Result<Option<u32>> {
    let mut buf = vec![0u8; 1024];
    loop {
        let mut found = None;
        match call(&mut buf, &mut found) {
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            0 => return Ok(found),
            rc => return Err(io::Error::from_raw_os_error(rc)),
        }
    }
}

/// Which step of the child's preparation failed (reported through the
/// fork path's pipe as a number, with an argument and the errno).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Session = 1,
    Group,
    Stdio,
    Terminal,
    /// Argument: the target number.
    Fd,
    /// Argument: the `Limit`'s index.
    Rlimit,
    Nice,
    Groups,
    /// Clearing the supplementary groups for a `uid` without `groups`.
    ClearGroups,
    Gid,
    Uid,
    DeathSignal,
    Dir,
    Exec,
}

impl Step {
    const ALL: [Step; 14] = [
        Step::Session, Step::Group, Step::Stdio, Step::Terminal, Step::Fd, Step::Rlimit, Step::Nice,
        Step::Groups, Step::ClearGroups, Step::Gid, Step::Uid, Step::DeathSignal, Step::Dir, Step::Exec,
    ];

    pub fn from_code(code: i32) -> Step {
        Step::ALL.into_iter().find(|s| *s as i32 == code).unwrap_or(Step::Exec)
    }

    /// What was being done, as a message says it: the option, its value
    /// and the system call.
    pub fn describe(self, arg: i32, attrs: &Attrs) -> String {
        let show = |v: Option<u32>| v.map_or_else(|| "?".to_string(), |v| v.to_string());
        match self {
            Step::Session => "setsid (a new session)".into(),
            Step::Group => "setpgid (process_group)".into(),
            Step::Stdio => "dup2 of stdin, stdout or stderr".into(),
            Step::Terminal => "opening the pseudo-terminal".into(),
            Step::Fd => format!("fds[{arg}]: dup2"),
            Step::Rlimit => {
                let l = Limit::ALL.get(arg as usize).copied().unwrap_or(Limit::Cpu);
                let v = attrs.rlimit(l).map_or_else(|| "?".to_string(), |v| v.to_string());
                format!("rlimits.{} = {v}: setrlimit", l.name())
            }
            Step::Nice => format!("nice = {}: setpriority", attrs.nice.unwrap_or(0)),
            Step::Groups => format!("groups = {}: setgroups", list_words(attrs.groups.as_deref().unwrap_or(&[]))),
            Step::ClearGroups => format!("uid = {}: setgroups (clearing the supplementary groups)", show(attrs.uid)),
            Step::Gid => format!("gid = {}: setgid", show(attrs.gid)),
            Step::Uid => format!("uid = {}: setuid", show(attrs.uid)),
            Step::DeathSignal => "kill_on_parent_death: prctl(PR_SET_PDEATHSIG)".into(),
            Step::Dir => "work_dir: chdir".into(),
            Step::Exec => "execve".into(),
        }
    }
}

/// A step of the child that failed: what, its argument, the errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildFailed {
    pub step: Step,
    pub arg: i32,
    pub errno: i32,
}

/// The fork path's extra work, prepared in the parent: nothing in here
/// allocates or locks once the child runs.
pub struct ChildExtra {
    /// (target, source), sorted by target; each source is a close-on-exec
    /// descriptor numbered above every target, so that no dup2 overwrites
    /// a source still to be moved.
    pub fds: Vec<(RawFd, RawFd)>,
    /// Descriptors numbered above this are free for the fork path's own
    /// use (its report pipe): no target is above it.
    pub above: RawFd,
    rlimits: Vec<(Resource, libc::rlimit, i32)>,
    umask: Option<libc::mode_t>,
    nice: Option<libc::c_int>,
    /// `Some`: setgroups with these; `clear_groups`: setgroups(0) whose
    /// EPERM is not an error (a parent that is not root, switching to its
    /// own uid).
    groups: Option<Vec<libc::gid_t>>,
    clear_groups: bool,
    gid: Option<libc::gid_t>,
    uid: Option<libc::uid_t>,
    /// Our pid, for the orphan check after PR_SET_PDEATHSIG.
    parent: Option<libc::pid_t>,
    /// The sources' descriptors, closed in the parent once the child has
    /// started (with this value).
    _owned: Vec<OwnedFd>,
}

impl ChildExtra {
    /// Prepare `attrs` and `fds` for the child. `open` opens a path's
    /// file (the standard streams' rules: never blocking, beneath a
    /// restricted executor's root).
    pub fn prepare(
        attrs: &Attrs,
        fds: &[PassedFd],
        open: impl Fn(&str, bool, &Path, bool, Option<&super::Within>) -> Result<OwnedFd, String>,
    ) -> Result<ChildExtra, String> {
        let above = fds.iter().map(|f| f.target).max().unwrap_or(2).max(2);
        let mut owned = Vec::with_capacity(fds.len());
        let mut pairs = Vec::with_capacity(fds.len());
        for f in fds {
            let fd = match &f.source {
                Redirect::Fd(fd) => dup_above(fd.as_raw_fd(), above),
                Redirect::Path { path, append, within } => {
                    let file = open(&format!("fds[{}]", f.target), !f.write, path, *append, within.as_ref())?;
                    dup_above(file.as_raw_fd(), above)
                }
            }
            .map_err(|e| dup_failed(f.target, above, &e))?;
            pairs.push((f.target, fd.as_raw_fd()));
            owned.push(fd);
        }
        // The fork path's report pipe goes above every target too: a
        // number too close to our limit fails here, named, rather than as
        // the fork's "Too many open files".
        if let (Some(f), Some(first)) = (fds.iter().max_by_key(|f| f.target), owned.first()) {
            dup_above(first.as_raw_fd(), above).map_err(|e| dup_failed(f.target, above, &e))?;
        }
        pairs.sort();
        let mut rlimits = Vec::new();
        for l in Limit::ALL {
            let Some(v) = attrs.rlimit(l) else { continue };
            let v = v as libc::rlim_t;
            let mut hard = v;
            if l == Limit::Cpu {
                // Soft and hard alike would make the kernel send SIGKILL at
                // the limit; a second more of hard limit makes it SIGXCPU
                // first (which a program may catch), SIGKILL a second
                // later. Within our own hard limit, so that it cannot fail
                // where `cpu = v` alone would not.
                let mut ours = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                // SAFETY: getrlimit writes one rlimit through a valid pointer.
                let got = unsafe { libc::getrlimit(libc::RLIMIT_CPU, &mut ours) } == 0;
                if !got || ours.rlim_max == libc::RLIM_INFINITY || ours.rlim_max > v {
                    hard = v.saturating_add(1);
                    if got && ours.rlim_max != libc::RLIM_INFINITY {
                        hard = hard.min(ours.rlim_max);
                    }
                }
            }
            rlimits.push((l.resource(), libc::rlimit { rlim_cur: v, rlim_max: hard }, l.index() as i32));
        }
        Ok(ChildExtra {
            fds: pairs,
            above,
            rlimits,
            umask: attrs.umask.map(|m| m as libc::mode_t),
            nice: attrs.nice,
            groups: attrs.groups.clone(),
            clear_groups: attrs.uid.is_some() && attrs.groups.is_none(),
            gid: attrs.gid,
            uid: attrs.uid,
            // SAFETY: getpid cannot fail.
            parent: (attrs.kill_on_parent_death == Some(true)).then(|| unsafe { libc::getpid() }),
            _owned: owned,
        })
    }

    /// Step 1 (see the module comment): the `fds` onto their numbers. In
    /// the child only, after the standard streams.
    ///
    /// # Safety
    /// Only in a freshly forked child.
    pub unsafe fn place_fds(&self) -> Result<(), (Step, i32)> {
        for &(target, fd) in &self.fds {
            if libc::dup2(fd, target) < 0 {
                return Err((Step::Fd, target));
            }
        }
        Ok(())
    }

    /// Steps 2 to 4: limits, umask, niceness, identity, death with the
    /// parent. In the child only, after its descriptors are in place.
    ///
    /// # Safety
    /// Only in a freshly forked child.
    pub unsafe fn apply(&self) -> Result<(), (Step, i32)> {
        for (res, lim, index) in &self.rlimits {
            if libc::setrlimit(*res, lim) < 0 {
                return Err((Step::Rlimit, *index));
            }
        }
        if let Some(m) = self.umask {
            libc::umask(m);
        }
        if let Some(n) = self.nice {
            if libc::setpriority(libc::PRIO_PROCESS, 0, n) < 0 {
                return Err((Step::Nice, 0));
            }
        }
        if let Some(g) = &self.groups {
            if libc::setgroups(g.len(), g.as_ptr()) < 0 {
                return Err((Step::Groups, 0));
            }
        } else if self.clear_groups && libc::setgroups(0, std::ptr::null()) < 0 && *libc::__errno_location() != libc::EPERM {
            return Err((Step::ClearGroups, 0));
        }
        if let Some(g) = self.gid {
            if libc::setgid(g) < 0 {
                return Err((Step::Gid, 0));
            }
        }
        if let Some(u) = self.uid {
            if libc::setuid(u) < 0 {
                return Err((Step::Uid, 0));
            }
        }
        if let Some(parent) = self.parent {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) < 0 {
                return Err((Step::DeathSignal, 0));
            }
            // The parent died before the setting was made: nobody will
            // send the signal, so the child does what it would have done.
            if libc::getppid() != parent {
                libc::kill(libc::getpid(), libc::SIGKILL);
                libc::_exit(137);
            }
        }
        Ok(())
    }
}

/// Why a descriptor for `fds[target]` could not be made above `above`:
/// past our limit of open files, the number is the reason.
fn dup_failed(target: RawFd, above: RawFd, e: &io::Error) -> String {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    match e.raw_os_error() {
        Some(libc::EINVAL | libc::EMFILE) if got => format!(
            "fds[{target}]: no descriptor above {above} is free below our limit of open files ({}, RLIMIT_NOFILE): \
             the library keeps its copies above the highest target until the start, so give lower numbers",
            lim.rlim_cur
        ),
        _ => format!("fds[{target}]: cannot duplicate the descriptor: {}", crate::core::os::sys::describe(e)),
    }
}

/// A close-on-exec duplicate of `fd` numbered above `above`.
fn dup_above(fd: RawFd, above: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl has no pointer arguments; the result is checked.
    let dup = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, above + 1) })?;
    // SAFETY: `dup` was just created by F_DUPFD_CLOEXEC and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// `fd` moved above `above` if it is not already (the fork path's report
/// pipe, which no target may overwrite).
pub fn moved_above(fd: OwnedFd, above: RawFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > above {
        Ok(fd)
    } else {
        dup_above(fd.as_raw_fd(), above)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_units_of_1024() {
        assert_eq!(parse_size(b"256m"), Some(256 << 20));
        assert_eq!(parse_size(b"1G"), Some(1 << 30));
        assert_eq!(parse_size(b"10"), Some(10));
        assert_eq!(parse_size(b"0"), Some(0));
        assert_eq!(parse_size(b"12x"), None);
        assert_eq!(parse_size(b"m"), None);
        assert_eq!(parse_size(b"-1"), None);
        assert_eq!(parse_size(b"99999999999999999999t"), None);
    }

    #[test]
    fn names_resolve_to_numbers() {
        assert_eq!(primary_gid(0), Ok(Some(0)));
        let alone = Attrs { uid: Some(0), ..Default::default() }.completed().unwrap();
        assert_eq!(alone.gid, Some(0));
        assert!(Attrs { uid: Some(4_000_000_000), ..Default::default() }.completed().is_err());
        assert_eq!(user_id(b"root"), Ok(0));
        assert_eq!(group_id(b"root"), Ok(0));
        assert!(user_id(b"no-such-user-here").unwrap_err().contains("no user named 'no-such-user-here'"));
    }

    #[test]
    fn a_caller_may_only_tighten_what_the_owner_set() {
        let mut owner = Attrs::default();
        owner.set_rlimit(Limit::Nproc, 50);
        owner.nice = Some(5);
        owner.umask = Some(0o027);
        owner.uid = Some(65534);
        owner.kill_on_parent_death = Some(true);
        // Nothing from the caller: the owner's values.
        let got = owner.tightened_by(&Attrs::default(), "a:b").unwrap();
        assert_eq!(got, owner);
        // Tighter values win.
        let mut caller = Attrs::default();
        caller.set_rlimit(Limit::Nproc, 10);
        caller.set_rlimit(Limit::Cpu, 3);
        caller.nice = Some(10);
        caller.umask = Some(0o077);
        caller.uid = Some(65534);
        let got = owner.tightened_by(&caller, "a:b").unwrap();
        assert_eq!((got.rlimit(Limit::Nproc), got.rlimit(Limit::Cpu), got.nice, got.umask), (Some(10), Some(3), Some(10), Some(0o077)));
        // Looser ones raise, naming the option and the owner's value.
        let loose = |f: &dyn Fn(&mut Attrs)| {
            let mut c = Attrs::default();
            f(&mut c);
            owner.tightened_by(&c, "a:b").unwrap_err()
        };
        let e = loose(&|c| c.set_rlimit(Limit::Nproc, 51));
        assert!(e.contains("rlimits.nproc = 51 is above the limit of 'a:b' (50)"), "{e}");
        let e = loose(&|c| c.nice = Some(0));
        assert!(e.contains("nice = 0 is below the nice of 'a:b' (5)"), "{e}");
        let e = loose(&|c| c.umask = Some(0o022));
        assert!(e.contains("umask = 022 lacks bits of the umask of 'a:b' (027)"), "{e}");
        let e = loose(&|c| c.uid = Some(0));
        assert!(e.contains("uid = 0 is not the identity of 'a:b' (uid = 65534)"), "{e}");
        let e = loose(&|c| c.gid = Some(0));
        assert!(e.contains("gid = 0 is not the identity"), "{e}");
        // The identity the owner's uid alone gives may be repeated.
        let nobody_gid = primary_gid(65534).unwrap();
        if let Some(g) = nobody_gid {
            let same = Attrs { uid: Some(65534), gid: Some(g), groups: Some(vec![]), ..Default::default() };
            let got = owner.tightened_by(&same, "a:b").unwrap();
            assert_eq!((got.uid, got.gid, got.groups), (Some(65534), None, None));
        }
        let e = loose(&|c| c.groups = Some(vec![0]));
        assert!(e.contains("groups = { 0 } is not the identity"), "{e}");
        let e = loose(&|c| c.kill_on_parent_death = Some(false));
        assert!(e.contains("kill_on_parent_death = false is not allowed on 'a:b'"), "{e}");
        // What the owner did not set, a caller may.
        let mut c = Attrs::default();
        c.set_rlimit(Limit::As, 1 << 30);
        assert_eq!(owner.tightened_by(&c, "a:b").unwrap().rlimit(Limit::As), Some(1 << 30));
    }

    fn fds_of(pid: libc::pid_t) -> Vec<String> {
        let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        fds.sort_by_key(|f| f.parse::<i32>().unwrap());
        fds
    }

    fn reap(pid: libc::pid_t) -> libc::c_int {
        let mut status = 0;
        // SAFETY: waitpid on our own child, with a valid status pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        status
    }

    #[test]
    fn the_fds_land_at_their_numbers_and_nothing_else_is_open() {
        use super::super::{spawn, SpawnRequest, Stdio};
        use crate::core::command::CommandSpec;
        let mut req = SpawnRequest::new(CommandSpec::Argv(vec!["sleep".into(), "5".into()]));
        (req.stdin, req.stdout, req.stderr) = (Stdio::Null, Stdio::Null, Stdio::Null);
        let null = std::sync::Arc::new(crate::core::os::sys::open_dev_null().unwrap());
        for target in [3, 7, 100] {
            req.fds.push(PassedFd { target, source: Redirect::Fd(null.clone()), write: false });
        }
        req.attrs.umask = Some(0o077);
        assert!(req.needs_fork());
        let s = spawn(&req).unwrap();
        // (The fork path returns once the exec closed its report pipe; the
        // program's loader and locale set-up still open and close files
        // for a moment after that, so the list is read until it settles.)
        let want = ["0", "1", "2", "3", "7", "100"];
        let mut fds = fds_of(s.pid);
        for _ in 0..100 {
            if fds == want {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            fds = fds_of(s.pid);
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid)).unwrap();
        crate::core::os::sys::kill(s.pid, libc::SIGKILL).unwrap();
        reap(s.pid);
        assert_eq!(fds, want);
        assert!(status.contains("Umask:\t0077"), "{status}");
    }

    #[test]
    fn a_step_that_fails_is_named_with_the_systems_errno() {
        use super::super::{spawn, SpawnRequest, Stdio};
        use crate::core::command::CommandSpec;
        let mut req = SpawnRequest::new(CommandSpec::Argv(vec!["true".into()]));
        (req.stdin, req.stdout, req.stderr) = (Stdio::Null, Stdio::Null, Stdio::Null);
        // More groups than the kernel takes (NGROUPS_MAX is 65536): EINVAL
        // as root, EPERM otherwise.
        req.attrs.groups = Some(vec![0; 70_000]);
        let e = spawn(&req).unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with("cannot start 'true': groups = { 0, 0,") && m.contains("(70000 in all) }: setgroups: "), "{m}");
        assert!(matches!(e.code(), "EINVAL" | "EPERM"), "{}", e.code());
    }

    #[test]
    fn only_what_posix_spawn_cannot_do_needs_the_fork_path() {
        assert!(!Attrs::default().needs_fork());
        assert!(!Attrs { kill_on_parent_death: Some(false), ..Default::default() }.needs_fork());
        assert!(Attrs { kill_on_parent_death: Some(true), ..Default::default() }.needs_fork());
        assert!(Attrs { umask: Some(0), ..Default::default() }.needs_fork());
    }
}
