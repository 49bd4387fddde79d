//! A throwaway PostgreSQL server from Debian's `postgresql` package:
//! `initdb` and `pg_ctl` from /usr/lib/postgresql/*/bin in a temporary
//! directory, run as the unprivileged `postgres` user when the tests run as
//! root, on a free loopback port. Stopped (`pg_ctl stop -m immediate`) on
//! drop, which also runs when a test panics.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

pub struct PgServer {
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    pub url: String,
    _dir: tempfile::TempDir,
}

fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgServer {
    /// Start a server, or `None` (printing SKIP) when PostgreSQL is not
    /// installed; under CI its absence is a failure.
    pub fn start() -> Option<PgServer> {
        let Some(bin) = pg_bin() else {
            if std::env::var_os("CI").is_some() {
                panic!("PostgreSQL is required under CI: install Debian's postgresql package");
            }
            eprintln!("SKIP: PostgreSQL not installed (apt-get install postgresql)");
            return None;
        };
        // SAFETY: geteuid has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if as_postgres {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let pw = nix_user("postgres");
            for p in [dir.path().to_path_buf(), data.clone()] {
                let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
                // SAFETY: a valid C path and ids.
                assert_eq!(unsafe { libc::chown(c.as_ptr(), pw.0, pw.1) }, 0);
            }
        }
        let s = PgServer {
            bin,
            data,
            as_postgres,
            url: String::new(),
            _dir: dir,
        };
        s.run(
            "initdb",
            &[
                "-D",
                s.data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let opts = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=400 -c shared_buffers=64MB",
                s.data.display()
            );
            let log = s.data.join("server.log");
            let ok = s.try_run(
                "pg_ctl",
                &[
                    "-D",
                    s.data.to_str().unwrap(),
                    "-o",
                    &opts,
                    "-l",
                    log.to_str().unwrap(),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            );
            if ok {
                let mut s = s;
                s.url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
                return Some(s);
            }
            last = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("PostgreSQL did not start: {last}");
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn try_run(&self, tool: &str, args: &[&str]) -> bool {
        let out = self.command(tool).args(args).output().unwrap();
        if !out.status.success() {
            eprintln!("{tool}: {}", String::from_utf8_lossy(&out.stderr));
        }
        out.status.success()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        assert!(self.try_run(tool, args), "{tool} failed");
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if !self.url.is_empty() {
            let _ = self
                .command("pg_ctl")
                .args([
                    "-D",
                    self.data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ])
                .output();
        }
    }
}

/// (uid, gid) of a user.
fn nix_user(name: &str) -> (u32, u32) {
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: getpwnam returns a pointer to static storage or null; read at once.
    let pw = unsafe { libc::getpwnam(n.as_ptr()) };
    assert!(!pw.is_null(), "no user {name}");
    // SAFETY: checked non-null above.
    unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
}
