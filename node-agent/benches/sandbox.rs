//! The sandbox's cost on a step (SPEC §19): the median start-to-exit of `/bin/sh -c true`, as
//! the runner starts a step, without the sandbox and under it (`node-agent sandbox-exec` with a
//! step's policy: the policy read, the Landlock rules made, then exec), over 101 starts each;
//! and what the startup proof found on this machine.
//!
//!   cargo bench -p node-agent --bench sandbox

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use node_agent::sandbox::exec::wrapper;
use node_agent::sandbox::policy::{for_step, list_dir, Places};
use node_agent::sandbox::proof;

const STARTS: usize = 101;

fn median_ms(mut command: impl FnMut() -> Command) -> f64 {
    let mut times: Vec<f64> = (0..STARTS)
        .map(|_| {
            let started = Instant::now();
            let status = command().status().expect("the step starts");
            assert!(status.success());
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[STARTS / 2]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let home = dir.path().join("home");
    let base = Places {
        home: home.clone(),
        state_dir: root.join("state"),
        worktrees_dir: root.join("worktrees"),
        runs_dir: root.join("runs"),
        logs_dir: root.join("logs"),
        tmp_dir: root.join("tmp"),
        ..Places::default()
    };
    let (worktree, run_dir) = (root.join("worktrees/t1"), root.join("runs/t1/r1"));
    for folder in [&home, &worktree, &run_dir, &base.state_dir] {
        std::fs::create_dir_all(folder).unwrap();
    }
    let binary = Path::new(env!("CARGO_BIN_EXE_node-agent"));
    let policy = for_step(&Places { worktree: worktree.clone(), run_dir: run_dir.clone(), ..base.clone() }, &list_dir);
    let prefix = wrapper(binary, &run_dir, &policy, &[worktree.clone(), run_dir.clone()]).unwrap();
    let plain = median_ms(|| {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", "true"]).current_dir(&worktree);
        command
    });
    let sandboxed = median_ms(|| {
        let mut command = Command::new(&prefix[0]);
        command.args(&prefix[1..]).args(["/bin/sh", "-c", "true"]).current_dir(&worktree);
        command
    });
    println!(
        "a step of `true`, median of {STARTS} starts: {plain:.2} ms without the sandbox, {sandboxed:.2} ms in it (+{:.2} ms, ×{:.2})",
        sandboxed - plain,
        sandboxed / plain
    );
    println!("policy: {} read rules, {} write rules", policy.read.len(), policy.write.len());
    println!("startup proof: {}", proof::run(binary, &base).summary());
}
