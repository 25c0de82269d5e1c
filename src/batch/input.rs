//! The batch's input: JSONL, CSV (Text2CAD's annotations) or plain text,
//! each item with an id, a prompt and a safe folder name; shards of it.

use std::collections::HashMap;
use std::path::Path;

use super::BatchError;

/// Longest folder name made from an id (a hash suffix keeps long ids apart).
const MAX_DIR_NAME: usize = 80;

/// Which kind of file the input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Jsonl,
    Csv,
    Text,
}

impl InputFormat {
    /// By extension: .jsonl/.ndjson, .csv, anything else is a plain list.
    pub fn of(path: &Path) -> InputFormat {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("jsonl" | "ndjson") => InputFormat::Jsonl,
            Some("csv") => InputFormat::Csv,
            _ => InputFormat::Text,
        }
    }
}

/// How to read the input.
#[derive(Debug, Clone)]
pub struct InputOptions {
    pub format: InputFormat,
    /// CSV: the id column.
    pub id_column: String,
    /// CSV: the prompt column.
    pub prompt_column: String,
}

/// One prompt to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    /// The folder name under `items/`.
    pub dir_name: String,
    pub prompt: String,
    /// The input line (1-based) it came from.
    pub line: usize,
    /// JSONL fields besides `id` and `prompt`, kept in the result record.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A line that was skipped, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Reads every item of the input; malformed lines become [`Problem`]s.
pub fn read_items(
    path: &Path,
    options: &InputOptions,
) -> Result<(Vec<Item>, Vec<Problem>), BatchError> {
    let bytes = std::fs::read(path).map_err(|source| BatchError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut problems = Vec::new();
    let raw = match options.format {
        InputFormat::Jsonl => read_jsonl(&bytes, &mut problems),
        InputFormat::Text => read_text(&bytes, &mut problems),
        InputFormat::Csv => read_csv(path, &bytes, options, &mut problems)?,
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut items = Vec::new();
    for (line, id, prompt, extra) in raw {
        let id = id.trim().to_string();
        if id.is_empty() {
            problems.push(Problem {
                line,
                message: "the id is empty".into(),
            });
            continue;
        }
        let prompt = prompt.trim().to_string();
        if prompt.is_empty() {
            problems.push(Problem {
                line,
                message: format!("the prompt of {id:?} is empty"),
            });
            continue;
        }
        if let Some(first) = seen.get(&id) {
            problems.push(Problem {
                line,
                message: format!(
                    "the id {id:?} was already used on line {first}; ids must be unique"
                ),
            });
            continue;
        }
        let dir_name = safe_dir_name(&id);
        // Names are case-folded for the check, for case-insensitive file systems.
        if let Some(other) = names.get(&dir_name.to_lowercase()) {
            problems.push(Problem {
                line,
                message: format!(
                    "the id {id:?} maps to the same folder name as {other:?}; rename one"
                ),
            });
            continue;
        }
        seen.insert(id.clone(), line);
        names.insert(dir_name.to_lowercase(), id.clone());
        items.push(Item {
            id,
            dir_name,
            prompt,
            line,
            extra,
        });
    }
    problems.sort_by_key(|p| p.line);
    Ok((items, problems))
}

type RawItem = (
    usize,
    String,
    String,
    serde_json::Map<String, serde_json::Value>,
);

/// Lines of a file as text, 1-based; invalid UTF-8 lines are problems.
fn text_lines<'a>(bytes: &'a [u8], problems: &mut Vec<Problem>) -> Vec<(usize, &'a str)> {
    let mut lines = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        match std::str::from_utf8(raw) {
            Ok(text) => lines.push((i + 1, text)),
            Err(err) => problems.push(Problem {
                line: i + 1,
                message: format!(
                    "not UTF-8 text (bad byte at column {}); save the file as UTF-8",
                    err.valid_up_to() + 1
                ),
            }),
        }
    }
    lines
}

fn read_jsonl(bytes: &[u8], problems: &mut Vec<Problem>) -> Vec<RawItem> {
    let mut items = Vec::new();
    for (line, text) in text_lines(bytes, problems) {
        let text = text.trim_start_matches('\u{feff}');
        if text.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(err) => {
                problems.push(Problem {
                    line,
                    message: format!("not JSON: {err}"),
                });
                continue;
            }
        };
        let serde_json::Value::Object(mut fields) = value else {
            problems.push(Problem {
                line,
                message: "not a JSON object; write {\"id\": …, \"prompt\": …}".into(),
            });
            continue;
        };
        let id = match fields.remove("id") {
            Some(serde_json::Value::String(s)) => s,
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(_) => {
                problems.push(Problem {
                    line,
                    message: "\"id\" must be a string or a number".into(),
                });
                continue;
            }
            None => {
                problems.push(Problem {
                    line,
                    message: "no \"id\" field".into(),
                });
                continue;
            }
        };
        let prompt = match fields.remove("prompt") {
            Some(serde_json::Value::String(s)) => s,
            Some(_) => {
                problems.push(Problem {
                    line,
                    message: "\"prompt\" must be a string".into(),
                });
                continue;
            }
            None => {
                problems.push(Problem {
                    line,
                    message: "no \"prompt\" field".into(),
                });
                continue;
            }
        };
        items.push((line, id, prompt, fields));
    }
    items
}

fn read_text(bytes: &[u8], problems: &mut Vec<Problem>) -> Vec<RawItem> {
    text_lines(bytes, problems)
        .into_iter()
        .filter(|(_, text)| !text.trim().is_empty())
        .map(|(line, text)| {
            let text = text.trim_start_matches('\u{feff}');
            (
                line,
                line.to_string(),
                text.to_string(),
                serde_json::Map::new(),
            )
        })
        .collect()
}

fn read_csv(
    path: &Path,
    bytes: &[u8],
    options: &InputOptions,
    problems: &mut Vec<Problem>,
) -> Result<Vec<RawItem>, BatchError> {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers = reader.byte_headers().map_err(|e| BatchError::Input {
        path: path.to_path_buf(),
        message: format!("cannot read the header line: {e}"),
    })?;
    let headers: Vec<String> = headers
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .collect();
    let column = |name: &str, flag: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| BatchError::Input {
                path: path.to_path_buf(),
                message: format!(
                    "no column {name:?} (the columns are {}); choose one with {flag}",
                    headers
                        .iter()
                        .map(|h| format!("{h:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    };
    let id_at = column(&options.id_column, "--id-column")?;
    let prompt_at = column(&options.prompt_column, "--prompt-column or --level")?;
    let mut items = Vec::new();
    for record in reader.byte_records() {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                let line = err.position().map_or(0, |p| p.line() as usize);
                problems.push(Problem {
                    line,
                    message: format!("not valid CSV: {err}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        let field = |at: usize| record.get(at).map(std::str::from_utf8);
        match (field(id_at), field(prompt_at)) {
            (Some(Ok(id)), Some(Ok(prompt))) => {
                let mut extra = serde_json::Map::new();
                extra.insert("column".into(), options.prompt_column.clone().into());
                items.push((line, id.to_string(), prompt.to_string(), extra));
            }
            (None, _) | (_, None) => problems.push(Problem {
                line,
                message: format!(
                    "the row has {} fields, too few for the id and prompt columns",
                    record.len()
                ),
            }),
            _ => problems.push(Problem {
                line,
                message: "not UTF-8 text; save the file as UTF-8".into(),
            }),
        }
    }
    Ok(items)
}

/// A folder name for an id: letters, digits, '.', '_' and '-' kept, anything
/// else replaced by '_'. When anything was replaced, the name would start with
/// a dot, or it is long, a hash of the id is appended, so different ids never
/// share a folder ("0000/0001" → "0000_0001-3f2a9c1e").
pub fn safe_dir_name(id: &str) -> String {
    let mut name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let changed = name != id || name.starts_with('.') || name.len() > MAX_DIR_NAME;
    if changed {
        name = name
            .trim_start_matches('.')
            .chars()
            .take(MAX_DIR_NAME - 9)
            .collect();
        name = format!("{name}-{:08x}", stable_hash(id) as u32);
    }
    name
}

/// FNV-1a: the same on every machine and release, unlike std's hasher.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `K/N` → (K, N).
pub fn parse_shard(text: &str) -> Result<(u32, u32), BatchError> {
    let bad = || BatchError::Shard(text.to_string());
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let k: u32 = k.trim().parse().map_err(|_| bad())?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    if n == 0 || k >= n {
        return Err(bad());
    }
    Ok((k, n))
}

/// Shard `k` of `n`: the items ranked by a hash of their id, every n-th from
/// the k-th. The same ids give the same shards in any input order, and shard
/// sizes differ by at most one.
pub fn shard(mut items: Vec<Item>, k: u32, n: u32) -> Vec<Item> {
    items.sort_by(|a, b| (stable_hash(&a.id), &a.id).cmp(&(stable_hash(&b.id), &b.id)));
    let mut mine: Vec<Item> = items
        .into_iter()
        .enumerate()
        .filter(|(rank, _)| *rank as u64 % u64::from(n) == u64::from(k))
        .map(|(_, item)| item)
        .collect();
    mine.sort_by_key(|item| item.line);
    mine
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items_of(format: InputFormat, text: &[u8]) -> (Vec<Item>, Vec<Problem>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input");
        std::fs::write(&path, text).unwrap();
        read_items(
            &path,
            &InputOptions {
                format,
                id_column: "uid".into(),
                prompt_column: "expert".into(),
            },
        )
        .unwrap()
    }

    #[test]
    fn jsonl_lines_are_read_and_malformed_ones_reported_with_their_numbers() {
        let mut text = b"{\"id\": \"a\", \"prompt\": \"a cube\", \"level\": 2}\n\n\
            {\"id\": 7, \"prompt\": \"a ball\"}\n\
            not json\n\
            {\"prompt\": \"no id\"}\n\
            {\"id\": \"b\", \"prompt\": \"  \"}\n\
            {\"id\": \"a\", \"prompt\": \"again\"}\n\
            [1, 2]\n"
            .to_vec();
        text.extend_from_slice(b"{\"id\": \"c\", \"prompt\": \"caf\xe9\"}\n");
        let (items, problems) = items_of(InputFormat::Jsonl, &text);
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["a", "7"]);
        assert_eq!(items[0].extra["level"], 2);
        assert_eq!(items[1].line, 3);
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [4, 5, 6, 7, 8, 9], "{problems:?}");
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(text[0].starts_with("line 4: not JSON"), "{text:?}");
        assert!(text[1].contains("no \"id\""), "{text:?}");
        assert!(text[2].contains("empty"), "{text:?}");
        assert!(text[3].contains("already used on line 1"), "{text:?}");
        assert!(text[4].contains("not a JSON object"), "{text:?}");
        assert!(text[5].contains("not UTF-8"), "{text:?}");
    }

    #[test]
    fn csv_uses_text2cad_columns_and_names_the_columns_when_one_is_missing() {
        let text = b"uid,abstract,beginner,intermediate,expert\n\
            0000/00001234,a plate,a flat plate,\"a plate, 2 holes\",\"Create a plate 40 mm wide, with two 4 mm holes\"\n\
            0000/00005678,a ring,a ring,a ring,\n";
        let (items, problems) = items_of(InputFormat::Csv, text);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].id, "0000/00001234");
        assert_eq!(
            items[0].prompt,
            "Create a plate 40 mm wide, with two 4 mm holes"
        );
        assert_eq!(items[0].line, 2);
        assert!(
            items[0].dir_name.starts_with("0000_00001234-"),
            "{}",
            items[0].dir_name
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 3);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(&path, text).unwrap();
        let err = read_items(
            &path,
            &InputOptions {
                format: InputFormat::Csv,
                id_column: "uid".into(),
                prompt_column: "advanced".into(),
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no column \"advanced\""), "{err}");
        assert!(err.contains("\"expert\""), "{err}");
    }

    #[test]
    fn plain_text_ids_are_line_numbers() {
        let (items, problems) = items_of(InputFormat::Text, b"a cube\n\n  a ball  \n");
        assert!(problems.is_empty());
        assert_eq!(
            items
                .iter()
                .map(|i| (i.id.as_str(), i.prompt.as_str()))
                .collect::<Vec<_>>(),
            [("1", "a cube"), ("3", "a ball")]
        );
    }

    #[test]
    fn ids_become_safe_distinct_folder_names() {
        assert_eq!(safe_dir_name("part-7_b.v2"), "part-7_b.v2");
        for id in [
            "../../etc",
            "a/b",
            "a b",
            ".hidden",
            "..",
            "x\0y",
            &"long".repeat(40),
        ] {
            let name = safe_dir_name(id);
            assert!(
                !name.contains('/') && !name.starts_with('.') && !name.is_empty(),
                "{id:?} → {name}"
            );
            assert!(name.len() <= MAX_DIR_NAME, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
                "{name}"
            );
        }
        assert_ne!(safe_dir_name("a/b"), safe_dir_name("a b"));
        assert_ne!(safe_dir_name("a/b"), safe_dir_name("a_b"));
    }

    #[test]
    fn shards_cover_every_item_once_are_balanced_and_ignore_input_order() {
        let items: Vec<Item> = (0..103)
            .map(|i| Item {
                id: format!("id{i}"),
                dir_name: format!("id{i}"),
                prompt: "p".into(),
                line: i + 1,
                extra: Default::default(),
            })
            .collect();
        let mut reversed = items.clone();
        reversed.reverse();
        let mut all = Vec::new();
        for k in 0..4 {
            let part: Vec<String> = shard(items.clone(), k, 4)
                .into_iter()
                .map(|i| i.id)
                .collect();
            let again: Vec<String> = shard(reversed.clone(), k, 4)
                .into_iter()
                .map(|i| i.id)
                .collect();
            let mut a = part.clone();
            let mut b = again;
            a.sort();
            b.sort();
            assert_eq!(a, b);
            assert!((25..=26).contains(&part.len()), "{}", part.len());
            all.extend(part);
        }
        all.sort();
        let mut expected: Vec<String> = items.into_iter().map(|i| i.id).collect();
        expected.sort();
        assert_eq!(all, expected);
        assert_eq!(parse_shard("3/8").unwrap(), (3, 8));
        for bad in ["8/8", "1", "a/2", "0/0"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }
}
