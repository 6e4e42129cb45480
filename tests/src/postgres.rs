//! A PostgreSQL 15 server of the test's own: `initdb` into a fresh temporary directory, then
//! `pg_ctl start` listening on `127.0.0.1:PORT` (a free loopback port) and on a unix socket in
//! that directory; stopped (`pg_ctl stop -m immediate`, then SIGKILL of the postmaster's PID)
//! and the directory removed when the [`Postgres`] is dropped.
//!
//! - Binaries: `/usr/lib/postgresql/15/bin` (Debian's `postgresql-15`; `CALLBRIDGE_PG_BIN`
//!   overrides). Missing: [`Postgres::start`] panics with the package to install — never a
//!   silent skip.
//! - Root: `initdb` refuses to run as root, so as root the directory is handed to the
//!   `postgres` user (created by the Debian package) and `initdb`/`pg_ctl`/`psql` run under
//!   `runuser -u postgres --`; as any other user they run directly.
//! - Authentication is `trust` for the superuser `postgres` (loopback only); `fsync = off`
//!   (a test server: durability across power loss is not what these tests check).
//! - A watchdog (`sh` polling the test process's PID) stops the server and removes the
//!   directory if the test process dies without dropping it (a `static` shared server, a
//!   `kill -9`); a normal drop kills the watchdog by its PID.
//!
//! - [`Postgres::start_in_netns`]: the same server inside a network namespace (host `pg` of
//!   the test topology, `tests/src/topology.rs`), listening on that namespace's address `ADDR` (and its loopback), with
//!   `trust` for clients from 198.18.0.0/15 too; [`Postgres::url`] then names `ADDR`.
//!
//! Std only, so that the store crate's unit tests include this very file (`#[path]`) instead
//! of a copy, and this crate exports it as `callbridge_tests::postgres` to black-box tests.
#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where Debian's PostgreSQL 15 binaries are.
pub const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A running PostgreSQL server; stopped and removed on drop.
#[derive(Debug)]
pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    watchdog: Option<Child>,
    /// The namespace the server runs in (`None`: this process's).
    netns: Option<String>,
    /// The address clients connect to (`127.0.0.1`, or the namespace's address).
    host: String,
}

static DATABASES: AtomicU32 = AtomicU32::new(0);

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

impl Postgres {
    /// Initialises and starts a server. Panics (with the log) when it cannot.
    #[must_use]
    pub fn start() -> Self {
        Self::start_at(None, "127.0.0.1".into())
    }

    /// Like [`Postgres::start`], but the server runs in network namespace `netns` and listens
    /// on `addr` (an address of that namespace) besides its loopback; clients from
    /// 198.18.0.0/15 are trusted (the namespaces of a test topology). `psql` still goes
    /// through the unix socket.
    #[must_use]
    pub fn start_in_netns(netns: &str, addr: std::net::Ipv4Addr) -> Self {
        Self::start_at(Some(netns.to_owned()), addr.to_string())
    }

    fn start_at(netns: Option<String>, host: String) -> Self {
        let bin = std::env::var_os("CALLBRIDGE_PG_BIN")
            .map_or_else(|| PathBuf::from(DEFAULT_BIN), PathBuf::from);
        for tool in ["initdb", "pg_ctl", "psql"] {
            assert!(
                bin.join(tool).is_file(),
                "PostgreSQL test server: {} is missing; install the `postgresql-15` package \
                 (scripts/install-test-deps) or set CALLBRIDGE_PG_BIN",
                bin.join(tool).display()
            );
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("cb-pg-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(dir.join("sock")).expect("creating the server's directory");
        let as_postgres = is_root();
        if as_postgres {
            // initdb refuses root: the postgres user owns the directory and runs the server.
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "chown postgres {} failed (is there a postgres user? install postgresql-15)",
                dir.display()
            );
        }
        let mut pg = Self {
            dir,
            bin,
            port: 0,
            as_postgres,
            watchdog: None,
            netns,
            host,
        };
        pg.watchdog = Some(pg.spawn_watchdog());
        let out = pg
            .tool("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(pg.data())
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if pg.netns.is_some() {
            // Clients from the topology's hosts, by address (the default file trusts only
            // loopback and the unix socket).
            use std::io::Write as _;
            let hba = pg.data().join("pg_hba.conf");
            let added = std::fs::OpenOptions::new()
                .append(true)
                .open(&hba)
                .and_then(|mut f| f.write_all(b"host all all 198.18.0.0/15 trust\n"));
            assert!(added.is_ok(), "appending to {}: {added:?}", hba.display());
        }
        let listen = if pg.host == "127.0.0.1" {
            pg.host.clone()
        } else {
            format!("127.0.0.1,{}", pg.host)
        };
        // The port is free when picked; another process may take it before the server binds:
        // try a few.
        for attempt in 0..5 {
            pg.port = free_port();
            let opts = format!(
                "-p {} -k {} -c listen_addresses={listen} -c fsync=off -c max_connections=200",
                pg.port,
                pg.dir.join("sock").display()
            );
            let status = pg
                .tool("pg_ctl")
                .args(["start", "-w", "-t", "60", "-D"])
                .arg(pg.data())
                .arg("-l")
                .arg(pg.log_path())
                .args(["-o", &opts])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("running pg_ctl start");
            if status.success() {
                return pg;
            }
            assert!(attempt < 4, "pg_ctl start failed 5 times:\n{}", pg.log());
        }
        unreachable!()
    }

    /// A command running one of the server's tools (as `postgres` when we are root).
    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        if let Some(ns) = &self.netns {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]);
            if self.as_postgres {
                c.args(["runuser", "-u", "postgres", "--"]);
            }
            c.arg(path);
            return c;
        }
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The server's log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The TCP port on 127.0.0.1.
    #[must_use]
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// The server's directory (data, socket, log).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB` (the namespace's address instead of
    /// 127.0.0.1 with [`Postgres::start_in_netns`]).
    #[must_use]
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@{}:{}/{db}", self.host, self.port)
    }

    /// Runs one SQL statement with `psql` in `db`; returns its unaligned, tuples-only output.
    /// Panics when it fails.
    #[must_use]
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .tool("psql")
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-h",
            ])
            .arg(self.dir.join("sock"))
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("running psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Creates a fresh, empty database and returns its URL.
    #[must_use]
    pub fn fresh_database(&self) -> String {
        let n = DATABASES.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        let _ = self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// A shell that stops the server and removes the directory once this process is gone.
    fn spawn_watchdog(&self) -> Child {
        let stop = if self.as_postgres {
            "runuser -u postgres -- \"$1/pg_ctl\""
        } else {
            "\"$1/pg_ctl\""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {stop} stop -D \"$2/data\" -m immediate >/dev/null 2>&1; rm -rf \"$2\"",
            pid = std::process::id()
        );
        Command::new("sh")
            .args(["-c", &script, "pg-watchdog"])
            .arg(&self.bin)
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the PostgreSQL watchdog")
    }

    fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let pid = self.postmaster_pid();
        let _ = self
            .tool("pg_ctl")
            .args(["stop", "-w", "-t", "30", "-m", "immediate", "-D"])
            .arg(self.data())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(pid) = pid {
            // Still there after pg_ctl (it should not be): SIGKILL by its PID, and wait.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
