//! Signals: their names and numbers here, `kill`, and the host's signals
//! held back while a blocking call loops in Rust.

use std::io;

use super::cvt;


/// The host's signals held back while a blocking call loops in Rust, and
/// let in only while it waits in the kernel (`epoll_pwait` with `waiting`).
///
/// A blocking call that takes several turns of the event loop without going
/// back to Lua must still return as soon as a signal's handler runs (Ctrl-C:
/// the interpreter's handler sets a hook that only Lua code triggers). A
/// signal that arrived between two waits, or while a wait returned events,
/// would leave no trace for the next wait to see; held back, it stays
/// pending (`arrived`) until the loop returns or the next wait lets it in
/// (that wait then returns EINTR).
/// The faults a thread raises itself (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
/// SIGTRAP, SIGSYS, SIGABRT) are never held: blocking them would kill the
/// process instead of running the host's handler.
pub struct SignalsHeld {
    /// The mask to restore, which is also the one to wait with.
    pub waiting: libc::sigset_t,
}

impl SignalsHeld {
    pub fn new() -> SignalsHeld {
        // SAFETY: both sets are local, initialised by sigfillset/sigemptyset
        // before use; pthread_sigmask only reads `held` and writes `old`.
        unsafe {
            let mut held: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut held);
            for sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGTRAP, libc::SIGSYS, libc::SIGABRT] {
                libc::sigdelset(&mut held, sig);
            }
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut old);
            libc::pthread_sigmask(libc::SIG_BLOCK, &held, &mut old);
            SignalsHeld { waiting: old }
        }
    }

    /// Whether a signal held back here is pending that, let in, would do
    /// something: run a handler, or end or stop the process. (A blocked
    /// signal whose default is to be ignored, SIGCHLD above all, is still
    /// queued; it is not news.) A wait that finds events ready returns them
    /// even then (the signal stays pending), so a loop asks this after
    /// every turn.
    pub fn arrived(&self) -> bool {
        // SAFETY: `pending` is a local set that sigpending fills; a sigset_t
        // is at least 64 bits on every Linux target.
        unsafe {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut pending);
            if libc::sigpending(&mut pending) != 0 {
                return false;
            }
            // Linux signals are the bits of the first 64-bit word (glibc's
            // sigset_t holds 1024 bits, the kernel's 64); both sets are read
            // alike, so the byte order does not matter. Nearly always no bit
            // is left, and no signal's action needs looking up.
            let first_word = |set: &libc::sigset_t| (set as *const libc::sigset_t).cast::<u64>().read_unaligned();
            if first_word(&pending) & !first_word(&self.waiting) == 0 {
                return false;
            }
            (1..=64).any(|sig| {
                libc::sigismember(&pending, sig) == 1 && libc::sigismember(&self.waiting, sig) != 1 && acts_on(sig)
            })
        }
    }
}

/// Whether signal `sig`, delivered now, would do anything.
fn acts_on(sig: libc::c_int) -> bool {
    // SAFETY: sigaction only writes the current action into `now`.
    let handler = unsafe {
        let mut now: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, std::ptr::null(), &mut now) != 0 {
            return false;
        }
        now.sa_sigaction
    };
    match handler {
        libc::SIG_IGN => false,
        libc::SIG_DFL => !matches!(sig, libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH | libc::SIGCONT),
        _ => true,
    }
}

impl Drop for SignalsHeld {
    fn drop(&mut self) {
        // Held signals are delivered here, before the call returns to Lua.
        // SAFETY: `waiting` is the mask pthread_sigmask filled in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.waiting, std::ptr::null_mut()) };
    }
}

/// `kill(2)`: only for a pid (or group id) that is known to be ours.
pub fn kill(target: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill has no pointer arguments.
    cvt(unsafe { libc::kill(target, sig) }).map(|_| ())
}

/// The signal numbers there are (Linux: 1-31, and the real-time 32-64).
pub const SIGNAL_NUMBERS: std::ops::RangeInclusive<libc::c_int> = 1..=64;

/// Signal names without "SIG" and their numbers here. One table: the
/// remote side gets names (`kill -s`, numbers differ between kernels:
/// SIGCONT is 18 on Linux, 19 on BSD), and Lua code may use names.
pub const SIGNALS: &[(libc::c_int, &str)] = &[
    (libc::SIGHUP, "HUP"), (libc::SIGINT, "INT"), (libc::SIGQUIT, "QUIT"), (libc::SIGILL, "ILL"),
    (libc::SIGTRAP, "TRAP"), (libc::SIGABRT, "ABRT"), (libc::SIGBUS, "BUS"), (libc::SIGFPE, "FPE"),
    (libc::SIGKILL, "KILL"), (libc::SIGUSR1, "USR1"), (libc::SIGSEGV, "SEGV"), (libc::SIGUSR2, "USR2"),
    (libc::SIGPIPE, "PIPE"), (libc::SIGALRM, "ALRM"), (libc::SIGTERM, "TERM"), (libc::SIGCHLD, "CHLD"),
    (libc::SIGCONT, "CONT"), (libc::SIGSTOP, "STOP"), (libc::SIGTSTP, "TSTP"), (libc::SIGTTIN, "TTIN"),
    (libc::SIGTTOU, "TTOU"), (libc::SIGURG, "URG"), (libc::SIGXCPU, "XCPU"), (libc::SIGXFSZ, "XFSZ"),
    (libc::SIGVTALRM, "VTALRM"), (libc::SIGPROF, "PROF"), (libc::SIGWINCH, "WINCH"), (libc::SIGIO, "IO"),
    (libc::SIGSYS, "SYS"),
];

/// The name of signal `sig` (without "SIG"), if it has one.
pub fn signal_name(sig: libc::c_int) -> Option<&'static str> {
    SIGNALS.iter().find(|(n, _)| *n == sig).map(|(_, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_signal_is_seen_as_arrived_and_delivered_when_released() {
        use std::sync::atomic::{AtomicBool, Ordering};
        static DELIVERED: AtomicBool = AtomicBool::new(false);
        extern "C" fn note(_: libc::c_int) {
            DELIVERED.store(true, Ordering::SeqCst);
        }
        // SAFETY: a handler for SIGURG, which no other test uses; the signal
        // is sent to this thread only.
        unsafe { libc::signal(libc::SIGURG, note as *const () as libc::sighandler_t) };
        let held = SignalsHeld::new();
        assert!(!held.arrived());
        // SAFETY: pthread_self names this live thread.
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGURG) };
        assert!(held.arrived(), "pending while held");
        assert!(!DELIVERED.load(Ordering::SeqCst), "not delivered while held");
        drop(held);
        assert!(DELIVERED.load(Ordering::SeqCst), "delivered when released");
        // A signal that would be ignored (SIGWINCH's default) is queued
        // while held, but it is no news.
        let held = SignalsHeld::new();
        // SAFETY: as above.
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGWINCH) };
        assert!(!held.arrived());
        drop(held);
        // A signal the thread blocked itself stays its own business.
        // SAFETY: local sets; the mask is restored below.
        unsafe {
            let mut urg: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut urg);
            libc::sigaddset(&mut urg, libc::SIGURG);
            libc::pthread_sigmask(libc::SIG_BLOCK, &urg, std::ptr::null_mut());
            let held = SignalsHeld::new();
            libc::pthread_kill(libc::pthread_self(), libc::SIGURG);
            assert!(!held.arrived());
            drop(held);
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            assert_eq!(libc::sigismember(&pending, libc::SIGURG), 1, "still blocked, still pending");
            DELIVERED.store(false, Ordering::SeqCst);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &urg, std::ptr::null_mut());
            assert!(DELIVERED.load(Ordering::SeqCst));
        }
    }
}
