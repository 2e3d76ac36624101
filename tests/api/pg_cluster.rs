//! A throwaway Postgres cluster of a test's own, which the test may stop, crash and start
//! again without disturbing the shared server every other test uses: `initdb` into a
//! temporary directory, trust authentication, a free loopback port, the socket in that
//! directory; stopped (immediately) and removed on drop. As root, `initdb` and `pg_ctl`
//! run as the `postgres` user (initdb refuses root), as `scripts/services.sh` does.

use std::path::PathBuf;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// A private Postgres cluster, running until dropped (or stopped).
pub struct PgCluster {
    /// `/usr/lib/postgresql/<newest>/bin`.
    bin: PathBuf,
    /// Holds `data/`, `log` and the socket.
    dir: PathBuf,
    pub port: u16,
    /// Run the server's programs as `postgres` (this process is root).
    as_postgres: bool,
}

/// How a cluster is stopped (`pg_ctl stop -m <mode>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Every server process quits at once, nothing written: a crash; the next start
    /// recovers from the WAL.
    Immediate,
    /// Sessions are terminated and a checkpoint written: an orderly restart.
    Fast,
}

impl Stop {
    fn mode(self) -> &'static str {
        match self {
            Stop::Immediate => "immediate",
            Stop::Fast => "fast",
        }
    }
}

/// The newest `/usr/lib/postgresql/*/bin` with `initdb` and `pg_ctl` in it.
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgCluster {
    /// Creates and starts a cluster; panics, saying why, where no Postgres is installed.
    pub async fn start() -> Self {
        let bin = postgres_bin().expect(
            "this test runs a Postgres cluster of its own and needs the server's programs \
             (initdb, pg_ctl) under /usr/lib/postgresql/<version>/bin: install PostgreSQL \
             (apt-get install postgresql)",
        );
        let dir = std::env::temp_dir().join(format!("lethe-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let chown = std::process::Command::new("chown")
                .arg("postgres:")
                .arg(&dir)
                .status()
                .unwrap();
            assert!(chown.success(), "chown postgres {}", dir.display());
        }
        let cluster = PgCluster {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        let data = cluster.dir.join("data");
        cluster
            .run(&format!(
                "'{}/initdb' -D '{}' -A trust -U postgres --no-sync",
                cluster.bin.display(),
                data.display()
            ))
            .await;
        cluster.start_server().await;
        cluster
    }

    /// Runs a shell command line (as `postgres` when this process is root); panics with
    /// its output (and the server's log) when it fails.
    async fn run(&self, line: &str) {
        let mut command = if self.as_postgres {
            let mut c = tokio::process::Command::new("su");
            c.args(["postgres", "-s", "/bin/sh", "-c", line]);
            c
        } else {
            let mut c = tokio::process::Command::new("/bin/sh");
            c.args(["-c", line]);
            c
        };
        let out = command.kill_on_drop(true).output().await.unwrap();
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            panic!(
                "{line}: {}\n{}{}\nserver log:\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Starts the server and waits until it accepts connections (after any recovery).
    pub async fn start_server(&self) {
        self.run(&format!(
            "'{}/pg_ctl' -D '{}' -l '{}' -w -t 120 -o \"-c listen_addresses=127.0.0.1 -p {} -k '{}'\" start >/dev/null",
            self.bin.display(),
            self.dir.join("data").display(),
            self.dir.join("log").display(),
            self.port,
            self.dir.display(),
        ))
        .await;
    }

    /// Stops the server (`mode`) and waits until it is down.
    pub async fn stop_server(&self, mode: Stop) {
        self.run(&format!(
            "'{}/pg_ctl' -D '{}' -m {} -w -t 120 stop >/dev/null",
            self.bin.display(),
            self.dir.join("data").display(),
            mode.mode(),
        ))
        .await;
    }

    /// Stops the server (`mode`), leaves it down for `down`, starts it again.
    pub async fn restart(&self, mode: Stop, down: Duration) {
        self.stop_server(mode).await;
        tokio::time::sleep(down).await;
        self.start_server().await;
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name`, migrates it and returns a pool over it that waits (up
    /// to 60 s for a connection) through a restart, and its URL.
    pub async fn database(&self, name: &str) -> (PgPool, String) {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url("postgres"))
            .await
            .unwrap();
        // `name` is the test's own identifier.
        sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let url = self.url(name);
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(Duration::from_secs(60))
            .connect(&url)
            .await
            .unwrap();
        lethe::db::MIGRATOR.run(&pool).await.unwrap();
        (pool, url)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let line = format!(
            "'{}/pg_ctl' -D '{}' -m immediate -w stop >/dev/null 2>&1",
            self.bin.display(),
            self.dir.join("data").display(),
        );
        let _ = if self.as_postgres {
            std::process::Command::new("su")
                .args(["postgres", "-s", "/bin/sh", "-c", &line])
                .status()
        } else {
            std::process::Command::new("/bin/sh")
                .args(["-c", &line])
                .status()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
