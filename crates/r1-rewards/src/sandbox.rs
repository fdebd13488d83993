//! Running untrusted programs: a separate process with limits, no network, no
//! inherited environment, a fresh temporary directory, capped output, and the whole
//! process tree killed at the end.
//!
//! Layers, each a fallback for the others:
//! - own session/process group (`setsid`), killed with `kill(-pgid, SIGKILL)`;
//! - rlimits: address space (memory), CPU seconds, file size, open files, processes,
//!   no core dumps;
//! - as root: a fresh network namespace (`unshare(CLONE_NEWNET)`: only a down
//!   loopback inside) and a dedicated unprivileged uid per concurrent run. The uid
//!   makes `RLIMIT_NPROC` effective (it is ignored for root), keeps the program out
//!   of the host's files, and lets us kill every process it spawned, even ones that
//!   left the process group, with `kill(-1)` from a helper running as that uid.
//!   Without root: `unshare(CLONE_NEWUSER|CLONE_NEWNET)` where the kernel permits it,
//!   else network access stays possible ([`network_isolation_available`] tells);
//! - the environment is cleared (no secrets leak through it);
//! - output is read with a cap; passing it kills the program;
//! - a wall-clock deadline kills the program and its tree.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Resource limits for one run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock limit in seconds.
    pub wall_s: f64,
    /// CPU-time limit in whole seconds (RLIMIT_CPU).
    pub cpu_s: u64,
    /// Address-space limit in MiB (RLIMIT_AS).
    pub memory_mb: u64,
    /// Bytes of stdout (and, separately, stderr) kept; more kills the program.
    pub max_output_bytes: usize,
    /// Largest file the program may write, in MiB (RLIMIT_FSIZE).
    pub max_file_mb: u64,
    /// Processes for the sandbox uid (RLIMIT_NPROC; effective when run as root).
    pub max_processes: u64,
    /// Put the program in an empty network namespace when possible.
    pub isolate_network: bool,
    /// As root, run as a dedicated unprivileged uid (strongly recommended).
    pub drop_privileges: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            wall_s: 5.0,
            cpu_s: 5,
            memory_mb: 1024,
            max_output_bytes: 1 << 20,
            max_file_mb: 16,
            max_processes: 32,
            isolate_network: true,
            drop_privileges: true,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
    Timeout,
    OutputLimit,
}

/// Result of one run.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub outcome: Outcome,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

impl RunResult {
    /// True when the program exited with status 0.
    pub fn success(&self) -> bool {
        self.outcome == Outcome::Exited(0)
    }
}

/// First uid of the pool used for sandboxed runs (far above real accounts).
const UID_BASE: u32 = 2_000_000_000;
/// Concurrent sandboxed runs (one uid each).
const UID_SLOTS: usize = 64;

struct Pool {
    used: Mutex<[bool; UID_SLOTS]>,
    freed: Condvar,
}

fn pool() -> &'static Pool {
    static P: OnceLock<Pool> = OnceLock::new();
    P.get_or_init(|| Pool {
        used: Mutex::new([false; UID_SLOTS]),
        freed: Condvar::new(),
    })
}

/// A reserved uid; released on drop.
struct UidSlot(usize);

impl UidSlot {
    fn acquire() -> UidSlot {
        let p = pool();
        let mut used = p.used.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(k) = used.iter().position(|u| !u) {
                used[k] = true;
                return UidSlot(k);
            }
            used = p.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
    }
    fn uid(&self) -> u32 {
        UID_BASE + self.0 as u32
    }
}

impl Drop for UidSlot {
    fn drop(&mut self) {
        let p = pool();
        let mut used = p.used.lock().unwrap_or_else(|e| e.into_inner());
        used[self.0] = false;
        p.freed.notify_one();
    }
}

/// True when this process runs as root (and can drop privileges, unshare).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether a sandboxed child gets an empty network namespace here (probed once).
pub fn network_isolation_available() -> bool {
    static R: OnceLock<bool> = OnceLock::new();
    *R.get_or_init(|| {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg("exit 0");
        // SAFETY: only async-signal-safe calls in the child.
        unsafe {
            cmd.pre_exec(|| {
                if unshare_net() {
                    Ok(())
                } else {
                    Err(std::io::Error::other("unshare"))
                }
            });
        }
        cmd.status().map(|s| s.success()).unwrap_or(false)
    })
}

/// Enters a new network namespace; as non-root via a user namespace. Returns
/// success. Async-signal-safe (only raw syscalls).
fn unshare_net() -> bool {
    // SAFETY: plain syscalls.
    unsafe {
        libc::unshare(libc::CLONE_NEWNET) == 0
            || (libc::geteuid() != 0
                && libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) == 0)
    }
}

/// Is every directory on the way to `path` traversable by others (so the sandbox
/// uid can execute it)?
fn world_reachable(path: &Path) -> bool {
    let mut p = path.to_path_buf();
    loop {
        match std::fs::metadata(&p) {
            Ok(m) => {
                let mode = m.permissions().mode();
                let needed = if m.is_dir() { 0o001 } else { 0o005 };
                if mode & needed != needed {
                    return false;
                }
            }
            Err(_) => return false,
        }
        if !p.pop() || p.as_os_str().is_empty() {
            return true;
        }
    }
}

/// A prepared sandbox directory: `root/` holds read-only files written by the
/// host; `root/work/` is the program's writable working directory.
pub struct SandboxDir {
    dir: tempfile::TempDir,
    slot: Option<UidSlot>,
}

impl SandboxDir {
    /// Creates a fresh directory. A new one per run, so nothing a program leaves
    /// behind (say, a replaced harness) can affect the next run.
    pub fn new(limits: &Limits, program: &Path) -> std::io::Result<SandboxDir> {
        let dir = tempfile::Builder::new().prefix("r1-sandbox-").tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let work = dir.path().join("work");
        std::fs::create_dir(&work)?;
        let slot = if limits.drop_privileges && is_root() && world_reachable(program) {
            let slot = UidSlot::acquire();
            let c = std::ffi::CString::new(work.as_os_str().as_encoded_bytes())
                .map_err(std::io::Error::other)?;
            // SAFETY: valid C string; chown has no other preconditions.
            if unsafe { libc::chown(c.as_ptr(), slot.uid(), slot.uid()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o700))?;
            Some(slot)
        } else {
            std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o777))?;
            None
        };
        Ok(SandboxDir { dir, slot })
    }

    /// The directory for host-written files (read-only to the program as root).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a host file readable by the program.
    pub fn write(&self, name: &str, data: &[u8]) -> std::io::Result<PathBuf> {
        let p = self.dir.path().join(name);
        std::fs::File::create(&p)?.write_all(data)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))?;
        Ok(p)
    }

    /// Whether the program runs under a dedicated unprivileged uid.
    pub fn privileges_dropped(&self) -> bool {
        self.slot.is_some()
    }

    /// Runs `program args…` with `stdin`, under `limits`.
    pub fn run(
        &self,
        program: &Path,
        args: &[&str],
        stdin: &[u8],
        limits: &Limits,
    ) -> std::io::Result<RunResult> {
        let work = self.dir.path().join("work");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(&work)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &work)
            .env("LANG", "C.UTF-8")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let uid = self.slot.as_ref().map(UidSlot::uid);
        let mem = limits.memory_mb.saturating_mul(1 << 20);
        let cpu = limits.cpu_s.max(1);
        let fsize = limits.max_file_mb.saturating_mul(1 << 20);
        let nproc = limits.max_processes.max(1);
        let net = limits.isolate_network;
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe syscalls (no allocation, no locks).
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                let set = |res, soft: u64, hard: u64| {
                    let r = libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    };
                    libc::setrlimit(res, &r);
                };
                set(libc::RLIMIT_AS, mem, mem);
                set(libc::RLIMIT_CPU, cpu, cpu + 1);
                set(libc::RLIMIT_FSIZE, fsize, fsize);
                set(libc::RLIMIT_CORE, 0, 0);
                set(libc::RLIMIT_NOFILE, 64, 64);
                set(libc::RLIMIT_NPROC, nproc, nproc);
                if net {
                    // Best effort: without permission the run goes on with network.
                    unshare_net();
                }
                if let Some(uid) = uid {
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(uid) != 0
                        || libc::setuid(uid) != 0
                    {
                        // Never run untrusted code as root by accident.
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let start = Instant::now();
        let mut child = cmd.spawn()?;
        let pid = child.id() as i32;
        let over = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
        let cap = limits.max_output_bytes;
        for (is_out, pipe) in [
            (
                true,
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
            ),
            (
                false,
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
            ),
        ] {
            let Some(mut pipe) = pipe else { continue };
            let tx = tx.clone();
            let over = over.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    match pipe.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let room = cap.saturating_sub(buf.len());
                            buf.extend_from_slice(&chunk[..n.min(room)]);
                            if n > room {
                                over.store(true, std::sync::atomic::Ordering::SeqCst);
                                // SAFETY: signalling our child's process group.
                                unsafe { libc::kill(-pid, libc::SIGKILL) };
                                break;
                            }
                        }
                    }
                }
                let _ = tx.send((is_out, buf));
            });
        }
        drop(tx);
        if let Some(mut sin) = child.stdin.take() {
            let data = stdin.to_vec();
            std::thread::spawn(move || {
                let _ = sin.write_all(&data);
            });
        }
        let deadline = start + Duration::from_secs_f64(limits.wall_s.max(0.01));
        let mut timed_out = false;
        let mut pause = Duration::from_micros(200);
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            if Instant::now() >= deadline {
                timed_out = true;
                // SAFETY: signalling our child's process group.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                break child.wait()?;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        };
        let elapsed = start.elapsed();
        // Whatever is left of the tree goes too.
        // SAFETY: signalling our child's process group.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        if let Some(uid) = uid {
            kill_uid(uid);
        }
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let collect_until = Instant::now() + Duration::from_millis(500);
        for _ in 0..2 {
            let left = collect_until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((true, b)) => stdout = b,
                Ok((false, b)) => stderr = b,
                Err(_) => break,
            }
        }
        let outcome = if over.load(std::sync::atomic::Ordering::SeqCst) {
            Outcome::OutputLimit
        } else if timed_out {
            Outcome::Timeout
        } else if let Some(code) = status.code() {
            Outcome::Exited(code)
        } else {
            Outcome::Signaled(status.signal().unwrap_or(0))
        };
        Ok(RunResult {
            outcome,
            stdout,
            stderr,
            elapsed,
        })
    }
}

/// Kills every process owned by `uid` (including ones that escaped the process
/// group with `setsid`): a forked helper becomes that uid and sends `kill(-1)`,
/// which reaches exactly the processes of the same uid.
fn kill_uid(uid: u32) {
    for _ in 0..3 {
        // SAFETY: the child only calls async-signal-safe functions, then _exit.
        unsafe {
            let pid = libc::fork();
            if pid == 0 {
                if libc::setuid(uid) == 0 {
                    libc::kill(-1, libc::SIGKILL);
                }
                libc::_exit(0);
            } else if pid > 0 {
                let mut st = 0;
                libc::waitpid(pid, &mut st, 0);
            }
        }
    }
}

/// Path of a Python 3 interpreter, found once: `/usr/bin/python3` (reachable by the
/// sandbox uid) first, else the one on `PATH` (resolved through shims such as
/// pyenv's, which need environment variables we clear).
pub fn find_python() -> Option<PathBuf> {
    static P: OnceLock<Option<PathBuf>> = OnceLock::new();
    P.get_or_init(|| {
        for c in ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"] {
            if Path::new(c).exists() {
                return Some(PathBuf::from(c));
            }
        }
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .ok()?;
        let s = String::from_utf8(out.stdout).ok()?;
        let p = PathBuf::from(s.trim());
        p.exists().then_some(p)
    })
    .clone()
}
