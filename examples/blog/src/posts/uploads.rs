//! Post images: checked by their content (the magic bytes of PNG, JPEG, GIF or WebP; never
//! the file name or the client's content type), stored under a random name in
//! `blog.upload_dir`, served from `GET /uploads/{name}` with the type the content had,
//! `X-Content-Type-Options: nosniff` and a year's cache lifetime (names never change).

use std::path::Path;

use axum::response::{IntoResponse, Response};
use flagon::http::{HeaderValue, StatusCode, header};
use flagon::{Ext, HttpError};
use tokio::io::AsyncWriteExt;

use crate::BlogConfig;

/// An image type the blog accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageType {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// GIF (87a or 89a).
    Gif,
    /// WebP.
    Webp,
}

impl ImageType {
    const ALL: [ImageType; 4] = [
        ImageType::Png,
        ImageType::Jpeg,
        ImageType::Gif,
        ImageType::Webp,
    ];

    /// The file extension stored names end with.
    pub fn extension(self) -> &'static str {
        match self {
            ImageType::Png => "png",
            ImageType::Jpeg => "jpg",
            ImageType::Gif => "gif",
            ImageType::Webp => "webp",
        }
    }

    /// The `Content-Type` it is served with.
    pub fn mime(self) -> &'static str {
        match self {
            ImageType::Png => "image/png",
            ImageType::Jpeg => "image/jpeg",
            ImageType::Gif => "image/gif",
            ImageType::Webp => "image/webp",
        }
    }
}

/// The image type `bytes` start with, if any.
///
/// ```
/// use example_blog::posts::{ImageType, sniff_image};
/// assert_eq!(sniff_image(b"\x89PNG\r\n\x1a\n...."), Some(ImageType::Png));
/// assert_eq!(sniff_image(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageType::Webp));
/// assert_eq!(sniff_image(b"<html><script>alert(1)</script>"), None);
/// ```
pub fn sniff_image(bytes: &[u8]) -> Option<ImageType> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageType::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageType::Jpeg)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageType::Gif)
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some(ImageType::Webp)
    } else {
        None
    }
}

/// The type of a stored upload's `name`, when it is one this module could have written: 32
/// lower-case hex digits, a dot and a known extension. Anything else (`..`, slashes,
/// another extension) is `None`, so no request names a file outside `blog.upload_dir`.
///
/// ```
/// use example_blog::posts::{ImageType, valid_upload_name};
/// assert_eq!(valid_upload_name("0123456789abcdef0123456789abcdef.png"), Some(ImageType::Png));
/// assert_eq!(valid_upload_name("../../etc/passwd"), None);
/// assert_eq!(valid_upload_name("0123456789abcdef0123456789abcdef.html"), None);
/// ```
pub fn valid_upload_name(name: &str) -> Option<ImageType> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 32
        || !stem
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    ImageType::ALL.into_iter().find(|t| t.extension() == ext)
}

/// Writes `bytes` of type `kind` under a fresh random name in `dir` (created if missing)
/// and returns the name.
pub async fn store(dir: &Path, kind: ImageType, bytes: &[u8]) -> std::io::Result<String> {
    tokio::fs::create_dir_all(dir).await?;
    let id: [u8; 16] = rand::random();
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("{hex}.{}", kind.extension());
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(&name))
        .await?;
    file.write_all(bytes).await?;
    file.flush().await?;
    Ok(name)
}

/// `GET /uploads/{name}`: a stored image, or a 404.
pub async fn serve(
    flagon::extract::Path(name): flagon::extract::Path<String>,
    blog: Ext<BlogConfig>,
) -> Result<Response, HttpError> {
    let missing = || HttpError::not_found("There is no such image.");
    let kind = valid_upload_name(&name).ok_or_else(missing)?;
    let bytes = match tokio::fs::read(blog.upload_dir.join(&name)).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(HttpError::internal(e)),
    };
    let mut res = (StatusCode::OK, bytes).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind.mime()));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(res)
}
