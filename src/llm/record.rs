//! Recording and replaying LLM exchanges (`--record`, `--replay`): a
//! replayed run gives the same run.json and models offline.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::files::JsonLines;

use super::{LlmError, Message, Reply};

/// Where replies are written (`--record`) or read from (`--replay`).
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub record: Option<PathBuf>,
    pub replay: Option<PathBuf>,
}

/// One line of a recording.
#[derive(Debug, Serialize, Deserialize)]
struct Recorded {
    messages: Vec<Message>,
    reply: Reply,
}

/// Replies from a recording, matched by the messages sent; a request made
/// twice gets the replies recorded for it in their order.
pub(super) struct Replay {
    file: PathBuf,
    replies: Mutex<HashMap<String, VecDeque<Reply>>>,
}

impl Replay {
    pub(super) fn load(file: &Path) -> Result<Replay, LlmError> {
        let text = std::fs::read_to_string(file).map_err(|source| LlmError::RecordingFile {
            file: file.to_path_buf(),
            action: "read",
            source,
        })?;
        let mut replies: HashMap<String, VecDeque<Reply>> = HashMap::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let recorded: Recorded =
                serde_json::from_str(line).map_err(|source| LlmError::RecordingLine {
                    file: file.to_path_buf(),
                    line: i + 1,
                    source,
                })?;
            replies
                .entry(request_key(&recorded.messages))
                .or_default()
                .push_back(recorded.reply);
        }
        Ok(Replay {
            file: file.to_path_buf(),
            replies: Mutex::new(replies),
        })
    }

    pub(super) fn take(&self, messages: &[Message]) -> Result<Reply, LlmError> {
        let mut replies = self.replies.lock().unwrap_or_else(|p| p.into_inner());
        replies
            .get_mut(&request_key(messages))
            .and_then(VecDeque::pop_front)
            .ok_or_else(|| {
                let last = messages.last().map_or("", |m| m.content.as_str());
                LlmError::NotRecorded {
                    file: self.file.clone(),
                    request: last.chars().take(120).collect(),
                }
            })
    }
}

fn request_key(messages: &[Message]) -> String {
    serde_json::to_string(messages).expect("messages serialise")
}

/// Appends every exchange to a recording, one JSON line each.
pub(super) struct Recorder {
    file: PathBuf,
    out: Mutex<JsonLines>,
}

impl Recorder {
    pub(super) fn open(file: &Path) -> Result<Recorder, LlmError> {
        let out = JsonLines::open(file).map_err(|source| LlmError::RecordingFile {
            file: file.to_path_buf(),
            action: "open for writing",
            source,
        })?;
        Ok(Recorder {
            file: file.to_path_buf(),
            out: Mutex::new(out),
        })
    }

    pub(super) fn write(&self, messages: &[Message], reply: &Reply) -> Result<(), LlmError> {
        let exchange = Recorded {
            messages: messages.to_vec(),
            reply: reply.clone(),
        };
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        out.append(&exchange)
            .map_err(|source| LlmError::RecordingFile {
                file: self.file.clone(),
                action: "append to",
                source,
            })
    }
}
