//! The example parts as the benchmarks change them: each by name, its
//! first parameter, and that parameter's value made 10 % larger; and the
//! median of their times.

// Each benchmark uses some of these.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

/// The example parts by name.
pub fn examples() -> BTreeMap<String, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("freecad-scripts/examples");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// The first `NAME = number` line of `code`: name and value text.
pub fn first_parameter(code: &str) -> Option<(String, String)> {
    code.lines().find_map(|line| {
        let (name, rest) = line.split_once(" = ")?;
        let value = rest.split_whitespace().next()?;
        let upper = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        (upper && value.parse::<f64>().is_ok()).then(|| (name.to_string(), value.to_string()))
    })
}

/// `value` 10 % larger, keeping an integer an integer.
pub fn larger(value: &str) -> String {
    match value.parse::<i64>() {
        Ok(n) => (n + (n / 10).max(1)).to_string(),
        Err(_) => format!("{:.1}", value.parse::<f64>().unwrap() * 1.1),
    }
}

/// The middle of `values` (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
