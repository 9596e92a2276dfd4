//! Running the real `chainlog` binary from the CLI tests.

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// What one command did.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Every stdout line as JSON.
    pub fn json(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect()
    }

    /// The single JSON object the command printed.
    pub fn one(&self) -> Value {
        let mut v = self.json();
        assert_eq!(v.len(), 1, "expected one JSON line, got {:?}", self.stdout);
        v.remove(0)
    }

    pub fn code(self, want: i32) -> Run {
        assert_eq!(
            self.code,
            Some(want),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn ok(self) -> Run {
        self.code(0)
    }

    /// Success with nothing at all on stderr: no progress bar, no warning.
    pub fn quiet_ok(self) -> Run {
        let r = self.ok();
        assert_eq!(r.stderr, "", "stderr must be empty on success");
        r
    }
}

/// Runs `chainlog ARGS`, feeding `stdin` when given.
pub fn run_with<I, S>(args: I, stdin: Option<&[u8]>) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(env!("CARGO_BIN_EXE_chainlog"))
        .args(args)
        .env_remove("CHAINLOG_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chainlog");
    // Written from a thread so a child that prints while reading cannot deadlock us.
    let writer = stdin.map(|input| {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let input = input.to_vec();
        std::thread::spawn(move || pipe.write_all(&input))
    });
    let out = child.wait_with_output().expect("wait for chainlog");
    if let Some(w) = writer {
        match w.join().expect("stdin writer") {
            // A child that fails before reading closes its stdin; that is not our error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            r => r.expect("write stdin"),
        }
    }
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `chainlog ARGS` with no input.
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with(args, None)
}

/// A temporary path as a command-line argument.
/// Whether strace(1) runs here: the syscall fault tests need it (`.ci/run` installs it).
pub fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `chainlog keygen NAME --out tmp/NAME`: the `.key` and `.pub` paths.
pub fn keygen(tmp: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    run(["keygen", name, "--out", p(&tmp.join(name))]).ok();
    (
        tmp.join(format!("{name}.key")),
        tmp.join(format!("{name}.pub")),
    )
}

pub fn p(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// `chainlog ARGS` running in the background with stdin, stdout and stderr piped.
pub fn spawn<I, S>(args: I) -> std::process::Child
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    spawn_env(args, &[])
}

/// As [`spawn`], with extra environment variables.
pub fn spawn_env<I, S>(args: I, env: &[(&str, &str)]) -> std::process::Child
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chainlog"));
    cmd.args(args)
        .env_remove("CHAINLOG_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn chainlog")
}

/// Sends `sig` (`TERM`, `INT`, `KILL`) to process `pid` with kill(1).
pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} {pid} failed");
}

/// Kills process `pid` if the test is still running after `secs` seconds, so a broken
/// build fails the test instead of hanging it. It never decides an outcome: a test that
/// works finishes long before and drops this first.
pub struct Watchdog(Option<std::sync::mpsc::Sender<()>>);

impl Watchdog {
    pub fn new(pid: u32, secs: u64) -> Watchdog {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(std::time::Duration::from_secs(secs))
            {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
            }
        });
        Watchdog(Some(tx))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}
