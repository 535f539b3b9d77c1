//! A PostgreSQL cluster of a test's own, for faults that would disturb the
//! shared one (a restart). Started and stopped by `scripts/postgres.sh`.

use std::path::PathBuf;
use std::process::Command;

pub struct OwnCluster {
    pub url: String,
    dir: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres.sh")
}

fn run(args: &[&str]) -> String {
    let output = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .expect("running scripts/postgres.sh");
    assert!(
        output.status.success(),
        "postgres.sh {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

impl OwnCluster {
    pub fn start() -> OwnCluster {
        let exports = run(&["start"]);
        let var = |name: &str| {
            exports
                .lines()
                .find_map(|line| line.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("postgres.sh printed no {name}"))
                .to_string()
        };
        OwnCluster {
            url: var("SETTINGS_SYNC_TEST_DATABASE_URL"),
            dir: var("SETTINGS_SYNC_TEST_PG_DIR"),
        }
    }

    pub fn stop_server(&self) {
        run(&["server-stop", &self.dir]);
    }

    pub fn start_server(&self) {
        run(&["server-start", &self.dir]);
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", &self.dir])
            .output();
    }
}
