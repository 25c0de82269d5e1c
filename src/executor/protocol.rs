//! The wire protocol between the supervisor and a `cadloop worker`, over the
//! worker's stdin/stdout pipes (the worker moves them off fds 0 and 1 before
//! Python starts, so nothing the generated code prints can reach them).
//!
//! A frame is: header length (u32 LE), a JSON header, payload length (u64 LE),
//! the payload. Only a finished job carries a payload: the mesh, vertices as
//! f32 LE triples followed by triangle indices as u32 LE triples.

use std::io::{Read, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::ExecReport;

/// Headers are small JSON documents; anything larger is a broken peer.
pub const MAX_HEADER_BYTES: u32 = 64 * 1024 * 1024;
/// A mesh of tens of millions of triangles still fits; more is a broken peer.
pub const MAX_PAYLOAD_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Supervisor → worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Request {
    /// Run `code`; write code's files into `dir`; run `checks` on what it builds.
    Run {
        code: String,
        dir: PathBuf,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        checks: Vec<crate::checks::CheckCall>,
    },
    /// Exit cleanly.
    Shutdown,
}

/// Worker → supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Reply {
    /// FreeCAD is imported and the sandbox entered; jobs may come.
    Ready {
        freecad: String,
        python: String,
        /// What the kernel enforced of the sandbox, in words.
        sandbox: String,
    },
    /// A job finished; the payload holds `vertex_bytes` then `index_bytes` of mesh.
    Done {
        report: Box<ExecReport>,
        vertex_bytes: u64,
        index_bytes: u64,
    },
    /// The worker cannot serve (FreeCAD missing, a broken harness); it exits next.
    Fatal { message: String },
}

/// A frame that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("pipe closed")]
    Closed,
    #[error("pipe error")]
    Io(#[from] std::io::Error),
    #[error("frame too large: {0} bytes")]
    TooLarge(u64),
    #[error("bad frame header")]
    Json(#[from] serde_json::Error),
}

fn encode_header<T: Serialize>(header: &T) -> Result<Vec<u8>, FrameError> {
    let json = serde_json::to_vec(header)?;
    if json.len() as u64 > MAX_HEADER_BYTES as u64 {
        return Err(FrameError::TooLarge(json.len() as u64));
    }
    let mut buf = Vec::with_capacity(json.len() + 12);
    buf.extend_from_slice(&(json.len() as u32).to_le_bytes());
    buf.extend_from_slice(&json);
    Ok(buf)
}

fn check_sizes(header_len: u32, payload_len: Option<u64>) -> Result<(), FrameError> {
    if header_len > MAX_HEADER_BYTES {
        return Err(FrameError::TooLarge(header_len as u64));
    }
    match payload_len {
        Some(len) if len > MAX_PAYLOAD_BYTES => Err(FrameError::TooLarge(len)),
        _ => Ok(()),
    }
}

fn closed_on_eof(err: std::io::Error) -> FrameError {
    if err.kind() == std::io::ErrorKind::UnexpectedEof {
        FrameError::Closed
    } else {
        FrameError::Io(err)
    }
}

/// Writes one frame (blocking; the worker side).
pub fn write_frame<T: Serialize>(
    out: &mut impl Write,
    header: &T,
    payload: &[&[u8]],
) -> Result<(), FrameError> {
    let head = encode_header(header)?;
    let payload_len: u64 = payload.iter().map(|p| p.len() as u64).sum();
    out.write_all(&head)?;
    out.write_all(&payload_len.to_le_bytes())?;
    for part in payload {
        out.write_all(part)?;
    }
    out.flush()?;
    Ok(())
}

/// Reads one frame (blocking; the worker side).
pub fn read_frame<T: for<'de> Deserialize<'de>>(
    input: &mut impl Read,
) -> Result<(T, Vec<u8>), FrameError> {
    let mut len4 = [0u8; 4];
    input.read_exact(&mut len4).map_err(closed_on_eof)?;
    let header_len = u32::from_le_bytes(len4);
    check_sizes(header_len, None)?;
    let mut json = vec![0u8; header_len as usize];
    input.read_exact(&mut json).map_err(closed_on_eof)?;
    let mut len8 = [0u8; 8];
    input.read_exact(&mut len8).map_err(closed_on_eof)?;
    let payload_len = u64::from_le_bytes(len8);
    check_sizes(header_len, Some(payload_len))?;
    let mut payload = vec![0u8; payload_len as usize];
    input.read_exact(&mut payload).map_err(closed_on_eof)?;
    Ok((serde_json::from_slice(&json)?, payload))
}

/// Writes one frame without payload (async; the supervisor side).
pub async fn send<T: Serialize>(
    out: &mut (impl AsyncWrite + Unpin),
    header: &T,
) -> Result<(), FrameError> {
    let mut frame = encode_header(header)?;
    frame.extend_from_slice(&0u64.to_le_bytes());
    out.write_all(&frame).await?;
    out.flush().await?;
    Ok(())
}

/// Reads one frame (async; the supervisor side).
pub async fn receive<T: for<'de> Deserialize<'de>>(
    input: &mut (impl AsyncRead + Unpin),
) -> Result<(T, Vec<u8>), FrameError> {
    let header_len = input.read_u32_le().await.map_err(closed_on_eof)?;
    check_sizes(header_len, None)?;
    let mut json = vec![0u8; header_len as usize];
    input.read_exact(&mut json).await.map_err(closed_on_eof)?;
    let payload_len = input.read_u64_le().await.map_err(closed_on_eof)?;
    check_sizes(header_len, Some(payload_len))?;
    let mut payload = vec![0u8; payload_len as usize];
    input
        .read_exact(&mut payload)
        .await
        .map_err(closed_on_eof)?;
    Ok((serde_json::from_slice(&json)?, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_frame_written_blocking_reads_back_async_with_its_payload() {
        let mut buf = Vec::new();
        let reply = Reply::Fatal {
            message: "no FreeCAD".into(),
        };
        write_frame(&mut buf, &reply, &[b"abc", b"de"]).unwrap();
        let (back, payload): (Reply, Vec<u8>) = receive(&mut buf.as_slice()).await.unwrap();
        assert!(matches!(back, Reply::Fatal { message } if message == "no FreeCAD"));
        assert_eq!(payload, b"abcde");
    }

    #[tokio::test]
    async fn a_frame_sent_async_reads_back_blocking() {
        let mut buf = Vec::new();
        send(&mut buf, &Request::Shutdown).await.unwrap();
        let (back, payload): (Request, Vec<u8>) = read_frame(&mut buf.as_slice()).unwrap();
        assert!(matches!(back, Request::Shutdown));
        assert!(payload.is_empty());
    }

    #[test]
    fn a_truncated_frame_is_a_closed_pipe_and_an_oversized_one_is_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::Shutdown, &[]).unwrap();
        let cut = &buf[..buf.len() - 3];
        let err = read_frame::<Request>(&mut &cut[..]).unwrap_err();
        assert!(matches!(err, FrameError::Closed), "{err:?}");

        let huge = (MAX_HEADER_BYTES + 1).to_le_bytes();
        let err = read_frame::<Request>(&mut &huge[..]).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge(_)), "{err:?}");
    }
}
