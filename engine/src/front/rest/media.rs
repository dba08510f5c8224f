//! `POST /v1/media` and `GET /v1/media/{media_id}` (PROTOCOL.md "Media").
//!
//! An upload streams to the node's store (`media/store.rs`), is durable
//! there, and then becomes the uploader's next media id on its home shard
//! (a record through the shard's log). A download checks the reader's
//! right (`front/media_access.rs`), then answers 304, 416, 206 or 200 and
//! streams the file.

use std::rc::Rc;

use chat_net::body::UploadError;
use chat_net::http::{Request, Response};
use chat_net::protocol::{ApiError, ErrorCode};
use serde_json::json;

use super::body::{json_response, not_found};
use super::Handled;
use crate::constants::{MEDIA_BYTES_MAX, MEDIA_MIME_BYTES_MAX};
use crate::front::caller::Caller;
use crate::front::errors::api_error;
use crate::front::media_access::readable;
use crate::machine::cmd::store_media::StoreMedia;
use crate::machine::ids::MediaId;
use crate::machine::state::{hex, Media};
use crate::media::range::{not_modified, part, Part};
use crate::media::store::{StoreError, Written};
use crate::node::core::Core;
use crate::shard::mesh::call;
use crate::shard::ops::media::{FetchMissing, Replicate, Store};

fn mime_of(req: &Request) -> Result<String, ApiError> {
    let mime = req
        .content_type
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad_request("an upload needs a Content-Type"))?;
    if mime.len() > MEDIA_MIME_BYTES_MAX || mime.chars().any(char::is_control) {
        let why = format!(
            "Content-Type must be at most {MEDIA_MIME_BYTES_MAX} bytes, without control characters"
        );
        return Err(ApiError::bad_request(why));
    }
    Ok(mime.to_string())
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Upload(UploadError::TooLarge { limit_bytes }) => ApiError::new(
            ErrorCode::TooLarge,
            format!("media over {limit_bytes} bytes"),
        ),
        StoreError::Upload(UploadError::Broken(why)) => {
            ApiError::bad_request(format!("reading the body: {why}"))
        }
        StoreError::Empty => ApiError::bad_request("an upload needs a non-empty body"),
        StoreError::Io(e) => ApiError::new(ErrorCode::Unavailable, format!("media store: {e}")),
    }
}

pub async fn upload(core: &Rc<Core>, caller: Caller, req: &Request) -> Handled {
    let mime = mime_of(req)?;
    let mut upload = req
        .upload
        .borrow_mut()
        .take()
        .expect("POST /v1/media streams");
    if upload.declared_bytes == Some(0) {
        return Err(store_error(StoreError::Empty).into());
    }
    let slot = core
        .media
        .slot()
        .ok_or_else(|| ApiError::new(ErrorCode::Unavailable, "too many uploads at once; retry"))?;
    let written = core
        .media
        .write(&slot, &mut upload)
        .await
        .map_err(store_error)?;
    drop(slot);
    assert!(written.size as usize <= MEDIA_BYTES_MAX);
    let (mesh, home) = (core.mesh(), core.shard_of(caller.user.0));
    // Cluster mode: a majority of nodes hold the bytes before the record.
    call(&mesh, home, Replicate(written))
        .await
        .map_err(api_error)?;
    let cmd = StoreMedia {
        user: caller.user,
        sha256: written.sha256,
        size: written.size,
        mime: mime.clone(),
    };
    let id = call(&mesh, home, Store(cmd)).await.map_err(api_error)?;
    let body = json!({
        "media_id": id.to_string(),
        "size": written.size,
        "sha256": hex(&written.sha256),
        "mime": mime,
    });
    Ok(json_response(201, &body))
}

/// The file's bytes `start..start + len`; in a cluster, a file this node
/// lacks (it was down, or its copy is in flight) is fetched from a peer.
async fn read(
    core: &Rc<Core>,
    id: MediaId,
    media: &Media,
    start: u64,
    len: u64,
) -> Result<chat_net::body::Chunks, ApiError> {
    let unavailable =
        |e: String| ApiError::new(ErrorCode::Unavailable, format!("media store: {e}"));
    match core.media.read(&media.sha256, start, len).await {
        Ok(chunks) => return Ok(chunks),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound || core.config.cluster.is_none() => {
            return Err(unavailable(e.to_string()))
        }
        Err(_) => {}
    }
    let w = Written {
        sha256: media.sha256,
        size: media.size,
    };
    call(&core.mesh(), core.shard_of(id.user.0), FetchMissing(w))
        .await
        .map_err(api_error)?;
    core.media
        .read(&media.sha256, start, len)
        .await
        .map_err(|e| unavailable(e.to_string()))
}

fn bare(status: u16, headers: Vec<(&'static str, String)>) -> Response {
    Response {
        status,
        content_type: "",
        body: Vec::new(),
        headers,
        stream: None,
    }
}

pub async fn download(core: &Rc<Core>, caller: Caller, id: &str, req: &Request) -> Handled {
    let media_id = MediaId::parse(id).ok_or_else(|| not_found(&format!("media {id}")))?;
    let media = readable(core, caller.user, media_id)
        .await
        .map_err(api_error)?;
    let etag = format!("\"{}\"", hex(&media.sha256));
    let mut headers = vec![
        ("etag", etag.clone()),
        ("accept-ranges", "bytes".to_string()),
        (
            "cache-control",
            "private, max-age=31536000, immutable".to_string(),
        ),
    ];
    if not_modified(req.header("if-none-match"), &etag) {
        return Ok(bare(304, headers));
    }
    let size = media.size;
    let (status, start, len) = match part(req.header("range"), size) {
        Part::Whole => (200, 0, size),
        Part::Range { start, last } => {
            headers.push(("content-range", format!("bytes {start}-{last}/{size}")));
            (206, start, last - start + 1)
        }
        Part::Unsatisfiable => {
            headers.push(("content-range", format!("bytes */{size}")));
            return Ok(bare(416, headers));
        }
    };
    let chunks = read(core, media_id, &media, start, len).await?;
    let mut response = bare(status, headers);
    response.content_type = "";
    response.headers.push(("content-type", media.mime.clone()));
    response.stream = Some(chat_net::body::Streamed { len, chunks });
    Ok(response)
}
