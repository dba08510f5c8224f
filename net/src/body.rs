//! Streamed HTTP bodies, both ways: an `Upload` (a request body the
//! handler reads chunk by chunk, under a size limit, instead of having it
//! read into memory first) and a `Streamed` response body (chunks made as
//! the client reads, with the length known up front so that hyper sends
//! `Content-Length`).
//!
//! Lives on: the connection's core (bodies are `!Send`, like everything
//! of a connection).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_lite::Stream;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// A request body still on the socket (`POST /v1/media`).
#[derive(Debug)]
pub struct Upload {
    body: Incoming,
    limit_bytes: usize,
    read_bytes: usize,
    /// `Content-Length`, when the client sent one.
    pub declared_bytes: Option<u64>,
}

/// Why an upload could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadError {
    /// More than the limit arrived (413; the connection is closed after).
    TooLarge { limit_bytes: usize },
    /// The client broke off or sent a malformed chunked body.
    Broken(String),
}

impl Upload {
    pub(crate) fn new(body: Incoming, limit_bytes: usize, declared_bytes: Option<u64>) -> Upload {
        Upload {
            body,
            limit_bytes,
            read_bytes: 0,
            declared_bytes,
        }
    }

    /// The next chunk, `None` at the end of the body. Never more than the
    /// limit in all.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, UploadError> {
        loop {
            let Some(frame) = self.body.frame().await else {
                return Ok(None);
            };
            let frame = frame.map_err(|e| UploadError::Broken(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            self.read_bytes += data.len();
            if self.read_bytes > self.limit_bytes {
                return Err(UploadError::TooLarge {
                    limit_bytes: self.limit_bytes,
                });
            }
            if !data.is_empty() {
                return Ok(Some(data));
            }
        }
    }

    /// Bytes read so far.
    pub fn read_bytes(&self) -> usize {
        self.read_bytes
    }
}

/// The chunks of a streamed response; an `Err` ends the response early
/// (the client sees a body shorter than its `Content-Length`).
pub type Chunks = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>>>>;

/// A response body of `len` bytes made by `chunks`.
pub struct Streamed {
    pub len: u64,
    pub chunks: Chunks,
}

impl fmt::Debug for Streamed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streamed").field("len", &self.len).finish()
    }
}

/// hyper's response body: all in memory, or streamed.
pub(crate) enum OutBody {
    Full(Option<Bytes>),
    Streamed { left: u64, chunks: Chunks },
}

impl OutBody {
    pub(crate) fn empty() -> OutBody {
        OutBody::Full(None)
    }
}

impl Body for OutBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            OutBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            OutBody::Streamed { left, chunks } => {
                if *left == 0 {
                    return Poll::Ready(None);
                }
                match chunks.as_mut().poll_next(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Some(Ok(b))) => {
                        let n = b.len() as u64;
                        if n > *left {
                            let e = std::io::Error::other("a chunk past the stated length");
                            return Poll::Ready(Some(Err(e)));
                        }
                        *left -= n;
                        Poll::Ready(Some(Ok(Frame::data(b))))
                    }
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                    Poll::Ready(None) => {
                        let e = std::io::ErrorKind::UnexpectedEof.into();
                        Poll::Ready(Some(Err(e)))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            OutBody::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            OutBody::Streamed { left, .. } => *left == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OutBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            OutBody::Streamed { left, .. } => SizeHint::with_exact(*left),
        }
    }
}
