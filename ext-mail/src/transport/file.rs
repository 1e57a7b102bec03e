//! The `file` transport: one `.eml` file per message (the development default).

use std::path::PathBuf;

use futures_util::future::BoxFuture;

use super::{Delivery, Transport};
use crate::error::{Phase, SendError};
use crate::message::Prepared;

/// Writes each message to `DIR/<time>-<id>.eml` (created if missing), written to a
/// temporary name and renamed, so a reader never sees half a file. Open them with any mail
/// client.
#[derive(Clone, Debug)]
pub struct FileTransport {
    dir: PathBuf,
}

impl FileTransport {
    /// A transport writing into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> FileTransport {
        FileTransport { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The file name for a message: the time in microseconds and the `Message-ID`'s safe
    /// characters.
    fn file_name(msg: &Prepared) -> String {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or_default();
        let id: String = msg
            .message_id()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .take(80)
            .collect();
        format!("{micros}-{id}.eml")
    }
}

impl Transport for FileTransport {
    fn name(&self) -> &'static str {
        "file"
    }

    fn send<'a>(&'a self, msg: &'a Prepared) -> BoxFuture<'a, Result<Delivery, SendError>> {
        Box::pin(async move {
            let fail = |e: std::io::Error| {
                SendError::transient(
                    Phase::Local,
                    format!("writing to {}: {e}", self.dir.display()),
                )
                .with_source(e)
            };
            tokio::fs::create_dir_all(&self.dir).await.map_err(fail)?;
            let name = Self::file_name(msg);
            let tmp = self.dir.join(format!(".{name}.tmp"));
            let path = self.dir.join(&name);
            tokio::fs::write(&tmp, msg.raw()).await.map_err(fail)?;
            tokio::fs::rename(&tmp, &path).await.map_err(fail)?;
            let mut d = Delivery::all(msg, format!("written to {}", path.display()));
            d.transcript.push(format!("wrote {}", path.display()));
            Ok(d)
        })
    }
}
