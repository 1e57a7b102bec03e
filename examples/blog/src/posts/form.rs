//! The editor's form body: `application/x-www-form-urlencoded`, or `multipart/form-data`
//! when it carries the image. Read within `server.body_limit`; the image part within
//! `blog.max_upload_bytes` (a larger one is drained and reported, not kept).

use axum::body::Bytes;
use axum::extract::Request;
use flagon::http::StatusCode;
use flagon::http::header::CONTENT_TYPE;
use flagon::{AppHandle, HttpError};

/// The form field of the image.
pub const IMAGE_FIELD: &str = "image";

/// An image part of the form.
#[derive(Debug)]
pub enum ImagePart {
    /// Its bytes, within the size limit.
    Data(Bytes),
    /// It was larger than the limit.
    TooLarge,
}

/// The fields of a submitted form.
#[derive(Debug, Default)]
pub struct Submitted {
    fields: Vec<(String, String)>,
    /// The image, when a non-empty file was sent.
    pub image: Option<ImagePart>,
}

impl Submitted {
    /// The first value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Field `name`, or empty.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").to_owned()
    }

    /// Whether checkbox `name` is ticked.
    pub fn checked(&self, name: &str) -> bool {
        matches!(self.get(name), Some("on" | "1" | "true" | "yes"))
    }
}

fn unreadable() -> HttpError {
    HttpError::bad_request("The form could not be read.")
}

/// Reads `req`'s body as a form.
pub async fn read(req: Request, app: &AppHandle, max_image: usize) -> Result<Submitted, HttpError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let limit = app.server_config().body_limit;
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(HttpError::from_body_error)?;
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return Ok(Submitted {
            fields: form_urlencoded::parse(&bytes).into_owned().collect(),
            image: None,
        });
    }
    let Ok(boundary) = multer::parse_boundary(&content_type) else {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send the form as application/x-www-form-urlencoded or multipart/form-data.",
        ));
    };
    let stream =
        futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(bytes) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut out = Submitted::default();
    while let Some(mut field) = multipart.next_field().await.map_err(|_| unreadable())? {
        let name = field.name().unwrap_or("").to_owned();
        if name != IMAGE_FIELD {
            let value = field.text().await.map_err(|_| unreadable())?;
            out.fields.push((name, value));
            continue;
        }
        let mut data: Vec<u8> = Vec::new();
        let mut too_large = false;
        while let Some(chunk) = field.chunk().await.map_err(|_| unreadable())? {
            if too_large || data.len() + chunk.len() > max_image {
                too_large = true;
                data = Vec::new();
                continue;
            }
            data.extend_from_slice(&chunk);
        }
        if too_large {
            out.image = Some(ImagePart::TooLarge);
        } else if !data.is_empty() {
            out.image = Some(ImagePart::Data(data.into()));
        }
    }
    Ok(out)
}
