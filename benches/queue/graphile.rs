//! graphile-worker 0.16, driven through benches/node_queue/bench.mjs: a
//! Node.js process that takes one command a line and answers with one JSON
//! line, so its rounds alternate with xtract's in one run.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::stats::Ms;

pub struct Graphile {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Graphile {
    /// Installs the locked dependencies once (`npm ci`) and starts the
    /// process against `url`; None, having said why, without Node.js.
    pub fn start(url: &str) -> Option<Graphile> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/node_queue");
        let (Some(node), Some(npm)) = (
            xtract::ops::config::find_program("node"),
            xtract::ops::config::find_program("npm"),
        ) else {
            println!("graphile-worker comparison skipped: Node.js (node, npm) not found");
            return None;
        };
        if !dir.join("node_modules/graphile-worker").exists() {
            let installed = Command::new(npm)
                .args(["ci", "--no-audit", "--no-fund", "--silent"])
                .current_dir(&dir)
                .status();
            if !matches!(installed, Ok(s) if s.success()) {
                println!(
                    "graphile-worker comparison skipped: `npm ci` in {} failed",
                    dir.display()
                );
                return None;
            }
        }
        let mut child = Command::new(node)
            .arg("bench.mjs")
            .arg(url)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let stdin = child.stdin.take()?;
        let stdout = BufReader::new(child.stdout.take()?);
        let mut g = Graphile {
            child,
            stdin,
            stdout,
        };
        match g.read() {
            Some(v) if v["ready"] == true => Some(g),
            other => {
                println!("graphile-worker comparison skipped: it did not start ({other:?})");
                None
            }
        }
    }

    fn read(&mut self) -> Option<Value> {
        let mut line = String::new();
        self.stdout.read_line(&mut line).ok()?;
        serde_json::from_str(&line).ok()
    }

    /// Sends a command and waits for its answer (the node process works
    /// alone meanwhile: this thread only waits).
    fn ask(&mut self, command: Value) -> Value {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        let answer = self.read().expect("an answer from bench.mjs");
        if let Some(e) = answer.get("error") {
            panic!("bench.mjs: {e}");
        }
        answer
    }

    pub fn pickup(&mut self, workers: usize, samples: usize, gap: Duration) -> Ms {
        let a = self.ask(json!({
            "cmd": "pickup", "workers": workers, "concurrency": 4,
            "samples": samples, "gap_ms": gap.as_millis() as u64,
        }));
        Ms::new(
            a["pickup_us"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() / 1e3)
                .collect(),
        )
    }

    /// Seconds to run `jobs` queued jobs.
    pub fn throughput(&mut self, workers: usize, jobs: u64) -> f64 {
        let a = self.ask(json!({
            "cmd": "throughput", "workers": workers, "concurrency": 32, "jobs": jobs,
        }));
        a["secs"].as_f64().unwrap()
    }

    /// Seconds of one `add_jobs` of `jobs` jobs (rolled back).
    pub fn burst(&mut self, jobs: u64) -> f64 {
        let a = self.ask(json!({"cmd": "burst", "jobs": jobs}));
        a["secs"].as_f64().unwrap()
    }

    pub fn dead_rows(&mut self) -> i64 {
        let a = self.ask(json!({"cmd": "dead_rows"}));
        a["n_dead_tup"].as_i64().unwrap()
    }
}

impl Drop for Graphile {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit"}));
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}
