//! One service binary running as a child process: spawned with exactly the environment the
//! harness gives it (as compose would), its output in a log file, stopped with SIGTERM or killed
//! with SIGKILL like an operator or the kernel would.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A service binary of the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    /// `wecom-sim`.
    Sim,
    /// `daikai-ingress`.
    Ingress,
    /// `daikai-auth-worker`.
    AuthWorker,
    /// `daikai-contact-sync`.
    ContactSync,
    /// `daikai-api`.
    Api,
    /// `daikai`, the operator CLI.
    Cli,
}

impl Binary {
    /// The executable's file name.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Sim => "wecom-sim",
            Self::Ingress => "daikai-ingress",
            Self::AuthWorker => "daikai-auth-worker",
            Self::ContactSync => "daikai-contact-sync",
            Self::Api => "daikai-api",
            Self::Cli => "daikai",
        }
    }

    /// Where cargo put it: beside the directory of the running test executable
    /// (`target/<profile>/deps/…` → `target/<profile>/…`). `cargo test --workspace` builds every
    /// binary of the workspace (each service crate has integration tests), so they are as
    /// fresh as the test itself; after `cargo test -p daikai-tests` alone they may not be.
    pub fn path(self) -> PathBuf {
        let exe = std::env::current_exe().expect("the test executable's path");
        let profile = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test runs from target/<profile>/deps");
        let path = profile.join(self.file_name());
        assert!(
            path.exists(),
            "{} is missing: build the workspace's binaries first (`cargo build --workspace \
             --bins`, or run scripts/test)",
            path.display()
        );
        path
    }
}

/// A running child process. Dropping it kills the process.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    endpoint: Option<std::net::SocketAddr>,
}

impl Process {
    /// Starts `binary` with `env` only (plus `PATH`), writing stdout and stderr to
    /// `{log_dir}/{name}.log`.
    pub fn spawn(binary: Binary, name: &str, env: &[(String, String)], log_dir: &Path) -> Self {
        std::fs::create_dir_all(log_dir).expect("the log directory");
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("the log file");
        let child = Command::new(binary.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("the log file"))
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
            log,
            endpoint: None,
        }
    }

    /// Records where it serves `/readyz` and `/metrics`.
    pub fn set_endpoint(&mut self, addr: std::net::SocketAddr) {
        self.endpoint = Some(addr);
    }

    /// The sum of the samples of `metric` on its `/metrics` whose line contains `labels` (e.g.
    /// `outcome="unavailable"`; `""` for every label set); 0 without an endpoint or the metric.
    pub async fn metric_sum(&self, metric: &str, labels: &str) -> f64 {
        let Some(addr) = self.endpoint else {
            return 0.0;
        };
        let Ok(response) = reqwest::get(format!("http://{addr}/metrics")).await else {
            return 0.0;
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .filter(|line| {
                line.strip_prefix(metric)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                    && line.contains(labels)
            })
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    /// The name it was started under (e.g. `contact-sync-2`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process has not been reaped")
    }

    /// Panics with the end of its log if it has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited ({status}); its log ends:\n{}",
                self.name,
                self.log_tail(40)
            );
        }
    }

    /// `kill -9`: no shutdown, no flush, no goodbye to the broker or the database.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL");
    }

    /// SIGTERM, then waits for a clean exit (SIGKILL and a panic after 30 s).
    pub async fn stop(mut self) {
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("running kill");
        assert!(sent.success(), "SIGTERM to {}", self.name);
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(status)) => assert!(
                status.success(),
                "{} stopped with {status}; its log ends:\n{}",
                self.name,
                self.log_tail(40)
            ),
            _ => panic!("{} did not stop within 30 s of SIGTERM", self.name),
        }
    }

    /// Resident set size in KiB (`VmRSS` of `/proc/{pid}/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// CPU time (user + system) used so far, from `/proc/{pid}/stat`.
    pub fn cpu_time(&self) -> Option<Duration> {
        let pid = self.child.id()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // The kernel's USER_HZ is 100 on every Linux this runs on.
        Some(Duration::from_millis(ticks * 10))
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Its whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
