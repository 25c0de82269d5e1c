//! Memory a process tree holds: for the studio's benchmark and load test,
//! which include this file on its own.

#![allow(dead_code)]

/// Resident memory of `pid` and its descendants (a server and its FreeCAD
/// workers), in MiB.
pub fn tree_rss_mib(pid: u32) -> f64 {
    let mut total_kib = 0u64;
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) {
            total_kib += status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
        }
        // Children are listed per thread: the workers come from tokio's threads.
        let tasks = std::fs::read_dir(format!("/proc/{p}/task"));
        for task in tasks.into_iter().flatten().flatten() {
            if let Ok(children) = std::fs::read_to_string(task.path().join("children")) {
                todo.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    total_kib as f64 / 1024.0
}
