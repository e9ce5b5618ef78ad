//! The objects of an export, local or in S3: opening one as a buffered
//! stream, reading a small one as text, asking whether one exists, listing
//! the folders under a prefix, and checking a data file's `md5Checksum`
//! while it streams.

use super::ExportLocation;
use crate::sources::backfill::BackfillError;
use md5::{Digest, Md5};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncReadExt, BufReader, ReadBuf};

/// A buffered stream of one object's bytes.
pub(super) type Bytes = Box<dyn AsyncBufRead + Unpin + Send>;

/// Reads the objects of an export (or of the prefix holding exports).
pub(super) struct Objects<'a> {
    pub location: ExportLocation,
    pub s3: Option<&'a aws_sdk_s3::Client>,
}

impl Objects<'_> {
    fn s3(&self, what: &str) -> Result<&aws_sdk_s3::Client, BackfillError> {
        self.s3.ok_or_else(|| BackfillError::Read {
            what: what.to_string(),
            reason: "no S3 client configured".into(),
        })
    }

    /// The full key or path of `name` inside the location (a relative key
    /// that `keys` has checked, or a fixed name).
    pub(super) fn resolve(&self, name: &str) -> String {
        match &self.location {
            ExportLocation::Dir(dir) => dir.join(name).display().to_string(),
            ExportLocation::S3 { prefix, .. } if prefix.is_empty() => name.to_string(),
            ExportLocation::S3 { prefix, .. } => format!("{prefix}/{name}"),
        }
    }

    /// Open the object `name` inside the location as a stream of bytes.
    pub async fn open(&self, name: &str) -> Result<Bytes, BackfillError> {
        let full = self.resolve(name);
        let read_err = |reason: String| BackfillError::Read {
            what: full.clone(),
            reason,
        };
        match &self.location {
            ExportLocation::Dir(_) => {
                let f = tokio::fs::File::open(&full)
                    .await
                    .map_err(|e| read_err(e.to_string()))?;
                Ok(Box::new(BufReader::with_capacity(256 * 1024, f)))
            }
            ExportLocation::S3 { bucket, .. } => {
                let obj = self
                    .s3(&full)?
                    .get_object()
                    .bucket(bucket)
                    .key(&full)
                    .send()
                    .await
                    .map_err(|e| read_err(crate::aws_error::describe(&e)))?;
                Ok(Box::new(BufReader::with_capacity(
                    256 * 1024,
                    obj.body.into_async_read(),
                )))
            }
        }
    }

    /// A small object (a manifest) as text.
    pub async fn read_text(&self, name: &str) -> Result<String, BackfillError> {
        let mut r = self.open(name).await?;
        let mut text = String::new();
        r.read_to_string(&mut text)
            .await
            .map_err(|e| BackfillError::Read {
                what: self.resolve(name),
                reason: e.to_string(),
            })?;
        Ok(text)
    }

    /// Whether `name` exists inside the location.
    pub async fn exists(&self, name: &str) -> Result<bool, BackfillError> {
        let full = self.resolve(name);
        match &self.location {
            ExportLocation::Dir(_) => Ok(Path::new(&full).is_file()),
            ExportLocation::S3 { bucket, .. } => {
                let listed = self
                    .s3(&full)?
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(&full)
                    .max_keys(1)
                    .send()
                    .await
                    .map_err(|e| BackfillError::Read {
                        what: format!("s3://{bucket}/{full}"),
                        reason: crate::aws_error::describe(&e),
                    })?;
                Ok(listed.contents().iter().any(|o| o.key() == Some(&full)))
            }
        }
    }

    /// The names of the folders directly inside the location, sorted.
    pub async fn folders(&self) -> Result<Vec<String>, BackfillError> {
        let mut names = Vec::new();
        match &self.location {
            ExportLocation::Dir(dir) => {
                let entries = match std::fs::read_dir(dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
                    Err(e) => {
                        return Err(BackfillError::Read {
                            what: dir.display().to_string(),
                            reason: e.to_string(),
                        });
                    }
                };
                for entry in entries.flatten() {
                    if entry.path().is_dir() {
                        names.push(entry.file_name().to_string_lossy().into_owned());
                    }
                }
            }
            ExportLocation::S3 { bucket, prefix } => {
                let s3 = self.s3(prefix)?;
                let under = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                };
                let mut pages = s3
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(&under)
                    .delimiter("/")
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| BackfillError::Read {
                        what: format!("s3://{bucket}/{under}"),
                        reason: crate::aws_error::describe(&e),
                    })?;
                    for p in page.common_prefixes() {
                        if let Some(name) = p.prefix().and_then(|p| p.strip_prefix(&under)) {
                            names.push(name.trim_end_matches('/').to_string());
                        }
                    }
                }
            }
        }
        names.sort();
        Ok(names)
    }
}

/// A data file's bytes passed through while their MD5 is computed, to be
/// compared with the manifest's `md5Checksum` (base64) at the end.
pub(super) struct Md5Check<R> {
    inner: R,
    md5: Md5,
}

impl<R> Md5Check<R> {
    pub fn new(inner: R) -> Self {
        Md5Check {
            inner,
            md5: Md5::new(),
        }
    }

    /// The MD5 of every byte read, base64 as in `manifest-files.json`.
    pub fn finish(self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.md5.finalize())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Md5Check<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let new = &buf.filled()[before..];
            self.md5.update(new);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn md5_is_that_of_every_byte_read() {
        let data = b"The quick brown fox jumps over the lazy dog".to_vec();
        let mut r = Md5Check::new(&data[..]);
        let mut sink = Vec::new();
        // Small reads: the digest must not depend on how the bytes arrive.
        let mut chunk = [0u8; 5];
        loop {
            let n = r.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            sink.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(sink, data);
        // md5 9e107d9d372bb6826bd81d3542a419d6, base64.
        assert_eq!(r.finish(), "nhB9nTcrtoJr2B01QqQZ1g==");
    }
}
