//! Child processes of the tests: output to a file, killed when dropped,
//! and their last lines printed when a test fails.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use super::eventually;

/// A child process that is killed when dropped, with its output in a file.
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, dir: &Path, command: &mut Command) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let err = file.try_clone().expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.into(),
            child,
            log,
        }
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        let early = self
            .child
            .try_wait()
            .expect("the process can be waited for");
        assert!(
            early.is_none(),
            "{} had already exited with {early:?}",
            self.name
        );
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        assert!(
            sent.is_ok_and(|s| s.success()),
            "cannot signal {}",
            self.name
        );
        let child = &mut self.child;
        eventually(&format!("{} to exit", self.name), || {
            let status = child.try_wait().ok().flatten();
            async move { status }
        })
        .await
    }

    /// Waits (bounded) for the process to exit by itself.
    pub async fn exited(&mut self) -> ExitStatus {
        let child = &mut self.child;
        eventually(&format!("{} to exit", self.name), || {
            let status = child.try_wait().ok().flatten();
            async move { status }
        })
        .await
    }

    fn tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- last lines of {} ({}) -----\n{}",
                self.name,
                self.log.display(),
                self.tail()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
