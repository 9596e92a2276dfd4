//! A real S3 API on 127.0.0.1 for the CLI's S3 tests: moto's server, from
//! `CHAINLOG_MOTO_SERVER` (a `moto_server` executable) or else from a Python virtual
//! environment these helpers create under the cargo target directory; a plain HTTP
//! client for what the tests do to the bucket behind the publisher's back; and a proxy
//! that can act between a request's arrival and its forwarding.
//!
//! moto does not check request signatures, so the raw requests carry a well-formed
//! `Authorization` header with a dummy signature (moto refuses anonymous requests to
//! private objects with 403).

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

/// What is installed into the virtual environment; a change reinstalls.
const MOTO_SPEC: &str = "moto[server]==5.2.5";
/// How long moto may take to start listening.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// The `moto_server` executable: `CHAINLOG_MOTO_SERVER`, or the one in the virtual
/// environment under the target directory, created (once, under a file lock) if absent.
/// Panics with what went wrong if it cannot be had: these tests never skip.
pub fn moto_server() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(p) = std::env::var_os("CHAINLOG_MOTO_SERVER") {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "CHAINLOG_MOTO_SERVER={} is not a file",
                p.display()
            );
            return p;
        }
        install_venv(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("moto-venv"))
    })
    .clone()
}

fn install_venv(venv: &Path) -> PathBuf {
    let bin = venv.join("bin").join("moto_server");
    let marker = venv.join(".chainlog-installed");
    fs::create_dir_all(venv.parent().unwrap()).unwrap();
    // Another test binary of this target directory may be installing at the same time.
    let lock_path = venv.with_extension("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("locking {}: {e}", lock_path.display()));
    if fs::read_to_string(&marker).ok().as_deref() == Some(MOTO_SPEC) && bin.is_file() {
        return bin;
    }
    let _ = fs::remove_file(&marker);
    let step = |what: &str, cmd: &mut Command| {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("S3 tests need moto: {what}: cannot run: {e}"));
        assert!(
            out.status.success(),
            "S3 tests need moto and could not install it ({what} failed, {}); without \
             network to PyPI, set CHAINLOG_MOTO_SERVER to a moto_server executable\n\
             stdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    step(
        "python3 -m venv",
        Command::new("python3").arg("-m").arg("venv").arg(venv),
    );
    step(
        &format!("pip install '{MOTO_SPEC}'"),
        Command::new(venv.join("bin").join("python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            MOTO_SPEC,
        ]),
    );
    assert!(bin.is_file(), "pip installed moto but no {}", bin.display());
    fs::write(&marker, MOTO_SPEC).unwrap();
    bin
}

/// The port moto says it is running on, read from its log: it is given port 0, so the
/// kernel picks a free one and no other test's server can be mistaken for ours.
fn announced_port(log: &Path, mut alive: impl FnMut() -> bool) -> Option<u16> {
    const MARK: &str = "Running on http://127.0.0.1:";
    let deadline = Instant::now() + START_DEADLINE;
    while Instant::now() < deadline {
        let text = fs::read_to_string(log).unwrap_or_default();
        if let Some(at) = text.find(MARK) {
            let digits: String = text[at + MARK.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(port) = digits.parse() {
                return Some(port);
            }
        }
        if !alive() {
            return None;
        }
        // A poll interval, not a synchronisation: the loop ends on the condition.
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Waits until `addr` accepts a connection, `alive` says false, or the deadline passes;
/// true if it accepted.
fn wait_listening(addr: SocketAddr, mut alive: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + START_DEADLINE;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        if !alive() {
            return false;
        }
        // A poll interval, not a synchronisation: the loop ends on the condition.
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A running moto server, killed when dropped.
pub struct Moto {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    pub fn start() -> Moto {
        let exe = moto_server();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let mut last = String::new();
        for _ in 0..3 {
            let out = File::create(&log).unwrap();
            let mut child = Command::new(&exe)
                .args(["-H", "127.0.0.1", "-p", "0"])
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
            let port = announced_port(&log, || matches!(child.try_wait(), Ok(None)));
            let addr: Option<SocketAddr> =
                port.map(|port| format!("127.0.0.1:{port}").parse().unwrap());
            if let Some(addr) =
                addr.filter(|&a| wait_listening(a, || matches!(child.try_wait(), Ok(None))))
            {
                return Moto {
                    child,
                    addr,
                    log,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last = fs::read_to_string(&log).unwrap_or_default();
        }
        panic!(
            "{} did not start listening within {START_DEADLINE:?}; its output:\n{last}",
            exe.display()
        );
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What moto logged so far, one line per request with its status, without the
    /// terminal colours werkzeug puts in even when writing to a file.
    pub fn log(&self) -> String {
        let raw = fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                // CSI: ESC [ parameters final-byte
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The environment a `chainlog` child needs to reach this server at `endpoint`.
    pub fn env_for(endpoint: &str) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    pub fn env(&self) -> Vec<(String, String)> {
        Moto::env_for(&self.endpoint())
    }

    /// A plain request to this server.
    pub fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        request(self.addr, method, path, headers, body)
    }

    /// Creates a bucket; `extra` headers as given (e.g. Object Lock).
    pub fn create_bucket(&self, name: &str, extra: &[(&str, &str)]) {
        let r = self.req("PUT", &format!("/{name}"), extra, b"");
        assert_eq!(r.status, 200, "creating bucket {name}: {}", r.text());
    }

    /// An object's bytes and ETag; panics unless it is there.
    pub fn get(&self, bucket: &str, key: &str) -> (Vec<u8>, String) {
        let r = self.req("GET", &format!("/{bucket}/{key}"), &[], b"");
        assert_eq!(r.status, 200, "GET {bucket}/{key}: {}", r.text());
        let etag = r.header("etag").expect("an ETag").to_owned();
        (r.body, etag)
    }

    /// Writes an object unconditionally.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) -> Resp {
        self.req("PUT", &format!("/{bucket}/{key}"), &[], bytes)
    }

    /// The keys under `prefix` (ListObjectsV2, one page: the tests' logs are small).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let r = self.req(
            "GET",
            &format!("/{bucket}?list-type=2&max-keys=1000&prefix={prefix}"),
            &[],
            b"",
        );
        assert_eq!(r.status, 200, "listing {bucket}: {}", r.text());
        let text = r.text();
        assert!(!text.contains("<IsTruncated>true"), "listing truncated");
        xml_all(&text, "Key")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every `<tag>…</tag>` text in `xml`, in order (enough for S3's flat listings).
pub fn xml_all(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let j = after.find(&close).expect("closing tag");
        out.push(after[..j].to_owned());
        rest = &after[j + close.len()..];
    }
    out
}

/// An HTTP response.
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Length: {}\r\nContent-Type: application/octet-stream\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=0000\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let resp = Resp {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    };
    assert!(
        !resp
            .header("transfer-encoding")
            .is_some_and(|t| t.contains("chunked")),
        "chunked responses are not handled here"
    );
    resp
}

/// A request as the proxy saw it.
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Hook = Box<dyn FnMut(&mut Seen) + Send>;

/// An HTTP proxy on 127.0.0.1 in front of `upstream`: each request is forwarded on its
/// own connection after `hook` has run on it (and may have changed its headers), and
/// answered with `Connection: close`. Every request is recorded with the status it got,
/// for [`Proxy::finish`]. Stops when finished or dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Vec<(Seen, u16)>>>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr, hook: Hook) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = mpsc::channel::<()>();
        // One connection at a time: the hook sees requests in the order they came.
        let thread = std::thread::spawn(move || {
            let mut hook = hook;
            let mut seen = Vec::new();
            for conn in listener.incoming() {
                if !matches!(stopped.try_recv(), Err(mpsc::TryRecvError::Empty)) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                if let Some(got) = forward(conn, upstream, &mut hook) {
                    seen.push(got);
                }
            }
            seen
        });
        Proxy {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the proxy: every request it forwarded, in order, with the status it got.
    pub fn finish(mut self) -> Vec<(Seen, u16)> {
        self.stop_thread().expect("the proxy's thread")
    }

    fn stop_thread(&mut self) -> Option<Vec<(Seen, u16)>> {
        drop(self.stop.take());
        // Wakes the accept loop so that it sees the channel closed.
        let _ = TcpStream::connect(self.addr);
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// Reads one request from `conn`, runs the hook, forwards it, relays the answer.
fn forward(conn: TcpStream, upstream: SocketAddr, hook: &mut Hook) -> Option<(Seen, u16)> {
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut rd = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    rd.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        rd.read_line(&mut l).ok()?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let mut seen = Seen {
        method,
        path,
        headers,
    };
    assert!(
        seen.header("transfer-encoding").is_none(),
        "chunked requests are not handled here"
    );
    let len: usize = seen
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; len];
    rd.read_exact(&mut body).ok()?;
    hook(&mut seen);

    let mut up = TcpStream::connect(upstream).ok()?;
    let mut head = format!("{} {} HTTP/1.1\r\n", seen.method, seen.path);
    for (k, v) in &seen.headers {
        if !k.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes()).ok()?;
    up.write_all(&body).ok()?;
    let mut raw = Vec::new();
    up.read_to_end(&mut raw).ok()?;
    let status = parse_response(&raw).status;
    let mut conn = conn;
    conn.write_all(&raw).ok()?;
    let _ = conn.shutdown(Shutdown::Both);
    Some((seen, status))
}
