//! The real `skiff server` as a child process, shared by the end-to-end tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

/// A `skiff server` child process; SIGKILLed on drop if still running.
pub struct Server {
    child: Child,
    pub url: String,
    pub kubeconfig: PathBuf,
}

impl Server {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::spawn("server", data_dir, extra)
    }

    /// `skiff up`: the API, the controllers and one node (agent on a free port).
    pub fn up(data_dir: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["--agent-port", "0"];
        args.extend_from_slice(extra);
        Self::spawn("up", data_dir, &args)
    }

    fn spawn(command: &str, data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(SKIFF)
            .args([command, "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start skiff server");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut url = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while url.is_none() && Instant::now() < deadline {
            let line = lines.next().expect("server output").expect("utf-8 line");
            let prefix = format!("skiff {command}: API at ");
            if let Some(rest) = line.strip_prefix(&prefix) {
                url = Some(rest.trim().to_string());
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            url: url.expect("the server prints its URL"),
            kubeconfig: data_dir.join("kubeconfig.yaml"),
        }
    }

    /// Runs the system kubectl against this server: (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        self.kubectl_with("kubectl", args, None)
    }

    /// Runs the kubectl at `bin`, with `stdin` piped in when given.
    pub fn kubectl_with(
        &self,
        bin: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> (bool, String, String) {
        let mut cmd = Command::new(bin);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        let out = match stdin {
            None => cmd.output(),
            Some(input) => {
                use std::io::Write;
                let mut child = cmd
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("{bin} runs: {e}"));
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
                child.wait_with_output()
            }
        }
        .unwrap_or_else(|e| panic!("{bin} runs: {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// SIGTERM, then the exit status within 15 s.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop within 15 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
