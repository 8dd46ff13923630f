//! A real rsyslogd for a test: its own config in a temp dir, inputs on free loopback ports,
//! an omfile output in JSON that the test parses back; killed when dropped.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::TempDir;

const MODULES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/rsyslog",
    "/usr/lib/aarch64-linux-gnu/rsyslog",
    "/usr/lib/rsyslog",
];

/// The directory holding rsyslog's modules.
fn module_dir() -> &'static str {
    MODULES
        .iter()
        .find(|d| Path::new(d).join("imrelp.so").exists())
        .copied()
        .expect(
            "rsyslog with imrelp is not installed: run scripts/install-test-deps.sh \
             (installs rsyslog and rsyslog-relp)",
        )
}

/// A free loopback port (TCP and UDP).
pub fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// What a daemon does with what it receives.
#[derive(Clone, Debug)]
pub enum Output {
    /// Writes every message to `out.log` as JSON.
    File,
    /// Forwards every message over RELP to `127.0.0.1:port`.
    RelpTo(u16),
}

/// One running rsyslogd.
pub struct Rsyslogd {
    pub dir: TempDir,
    pub tcp: u16,
    pub udp: u16,
    pub relp: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Rsyslogd {
    pub fn start(output: Output) -> Rsyslogd {
        let dir = TempDir::new("rsyslogd");
        let (tcp, udp, relp) = (free_port(), free_port(), free_port());
        let modules = module_dir();
        let work = dir.path().display().to_string();
        let action = match output {
            Output::File => {
                format!("action(type=\"omfile\" file=\"{work}/out.log\" template=\"parsed\")")
            }
            // An in-memory action queue that retries for ever: the relay keeps messages
            // while the central collector is away.
            Output::RelpTo(port) => format!(
                "module(load=\"{modules}/omrelp.so\")\n\
                 action(type=\"omrelp\" target=\"127.0.0.1\" port=\"{port}\" \
                 template=\"RSYSLOG_SyslogProtocol23Format\" \
                 queue.type=\"LinkedList\" queue.size=\"1000000\" \
                 action.resumeRetryCount=\"-1\" action.resumeInterval=\"1\")"
            ),
        };
        let conf = format!(
            r#"global(workDirectory="{work}" maxMessageSize="256k")
module(load="{modules}/imtcp.so")
module(load="{modules}/imudp.so")
module(load="{modules}/imrelp.so")
# A direct main queue: a message is in the file (or with the relay's action) before imrelp
# answers it, so that an acknowledged message survives SIGKILL.
main_queue(queue.type="Direct")
template(name="parsed" type="list" option.jsonf="on") {{
  property(outname="pri" name="pri" format="jsonf")
  property(outname="timestamp" name="timestamp" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}}
input(type="imtcp" address="127.0.0.1" port="{tcp}")
input(type="imudp" address="127.0.0.1" port="{udp}" rcvbufSize="16m")
input(type="imrelp" address="127.0.0.1" port="{relp}")
module(load="{modules}/imuxsock.so" SysSock.Use="off")
input(type="imuxsock" Socket="{work}/log" RateLimit.Interval="0")
{action}
"#
        );
        let conf_path = dir.file("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let check = Command::new("rsyslogd")
            .args(["-N1", "-f"])
            .arg(&conf_path)
            .output()
            .expect("cannot run rsyslogd");
        assert!(
            check.status.success(),
            "rsyslogd -N1 rejects the config: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let mut daemon = Rsyslogd {
            dir,
            tcp,
            udp,
            relp,
            conf: conf_path,
            child: None,
        };
        daemon.spawn();
        daemon
    }

    fn spawn(&mut self) {
        let pid = self.dir.file("rsyslogd.pid");
        let _ = std::fs::remove_file(&pid);
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(&pid)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.file("rsyslogd.stderr")).unwrap())
            .spawn()
            .expect("cannot start rsyslogd");
        self.child = Some(child);
        // Listening on TCP and RELP; imudp starts with them.
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in [self.tcp, self.relp] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "rsyslogd did not listen on {port}: {}",
                    std::fs::read_to_string(self.dir.file("rsyslogd.stderr")).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    /// The daemon's Unix datagram socket (like `/dev/log`).
    pub fn unix_socket(&self) -> PathBuf {
        self.dir.file("log")
    }

    /// SIGKILL: the daemon dies at once, with whatever it holds in memory.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the daemon again on the same ports with the same config.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// The records in `out.log` so far, parsed.
    pub fn records(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read(self.dir.file("out.log")).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        text.lines()
            .filter(|l| l.ends_with('}'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Waits until `out.log` holds at least `n` records from `app` (or `timeout` passes, or
    /// the count stops growing for `quiet`), and returns them.
    pub fn wait_for(&self, app: &str, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        let mut last = (0, Instant::now());
        loop {
            let records: Vec<_> = self
                .records()
                .into_iter()
                .filter(|r| r["app"] == app)
                .collect();
            if records.len() >= n || Instant::now() >= deadline {
                return records;
            }
            if records.len() != last.0 {
                last = (records.len(), Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(5) {
                return records;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        self.kill9();
    }
}
