//! Writing: `GET/POST /posts/new`, `GET/POST /posts/{slug}/edit`, `POST /posts/{slug}/delete`.
//!
//! Logged-in accounts that may create write posts; authors change only their own, editors
//! anyone's ([`Account::may_edit`]); anyone else gets a 403 (a draft they may not see, a
//! 404). A refused form is shown again with what was typed, the message and a 422 (413 for
//! an image over `blog.max_upload_bytes`, 415 for a file that is not an image).

use axum::extract::Request;
use axum::response::{IntoResponse, Redirect, Response};
use flagon::extract::Path;
use flagon::http::StatusCode;
use flagon::messages::Message;
use flagon::session::Session;
use flagon::templates::{Templates, context};
use flagon::{AppHandle, Ext, HttpError};
use flagon_db::{Db, TxConn};
use flagon_i18n::Lang;
use flagon_login::{CurrentUser, Permissions};
use serde::Serialize;

use super::form::{self, ImagePart, Submitted};
use super::uploads::{self, ImageType};
use super::{pages, views};
use crate::BlogConfig;
use crate::content::{self, InputError, Post, PostInput};
use crate::models::{Account, now};

/// What the form shows in its fields.
#[derive(Debug, Default, Serialize)]
struct Values {
    title: String,
    body: String,
    category: String,
    tags: String,
    published: bool,
}

impl Values {
    fn of(form: &Submitted) -> Values {
        Values {
            title: form.text("title"),
            body: form.text("body"),
            category: form.text("category"),
            tags: form.text("tags"),
            published: form.checked("published") || form.get("status") == Some("published"),
        }
    }

    async fn of_post(db: &Db, post: &Post) -> Result<Values, HttpError> {
        Ok(Values {
            title: post.title.clone(),
            body: post.body_md.clone(),
            category: post.category.clone().unwrap_or_default(),
            tags: post.tags(db).await?.join(", "),
            published: post.is_published(),
        })
    }

    fn input(&self) -> PostInput {
        PostInput {
            title: self.title.clone(),
            body: self.body.clone(),
            published: self.published,
            category: Some(self.category.clone()),
            tags: self.tags.split(',').map(str::to_owned).collect(),
        }
    }
}

/// A refused form: the field, the message shown, the status.
struct Refusal {
    field: &'static str,
    message: String,
    status: StatusCode,
}

impl Refusal {
    fn input(lang: &Lang, e: &InputError) -> Refusal {
        let id = format!("post-error-{}", e.field);
        let message = lang.try_t(&id, None).unwrap_or_else(|| e.message.clone());
        Refusal {
            field: e.field,
            message,
            status: StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

fn refuse_create(user: &Account, lang: &Lang) -> Result<(), HttpError> {
    if user.can(Permissions::CREATE) {
        Ok(())
    } else {
        Err(HttpError::forbidden(lang.t("post-forbidden", ())))
    }
}

async fn render_form(
    tpl: &Templates,
    post: Option<&Post>,
    values: &Values,
    refusal: Option<Refusal>,
) -> Result<Response, HttpError> {
    let status = refusal.as_ref().map_or(StatusCode::OK, |r| r.status);
    let html = tpl
        .render(
            "posts/form.html",
            context! {
                post => post.map(|p| context! { slug => &p.slug, title => &p.title, image => &p.image }),
                values,
                error_field => refusal.as_ref().map(|r| r.field),
                error => refusal.map(|r| r.message),
            },
        )
        .await?;
    Ok((status, html).into_response())
}

/// The form's image, checked: its type by content, its size by `blog.max_upload_bytes`.
fn image_of(
    form: &Submitted,
    blog: &BlogConfig,
    lang: &Lang,
) -> Result<Option<(ImageType, axum::body::Bytes)>, Refusal> {
    match &form.image {
        None => Ok(None),
        Some(ImagePart::TooLarge) => Err(Refusal {
            field: "image",
            message: lang.t(
                "post-error-image-size",
                [("max", (blog.max_upload_bytes / 1024).to_string())],
            ),
            status: StatusCode::PAYLOAD_TOO_LARGE,
        }),
        Some(ImagePart::Data(bytes)) => match uploads::sniff_image(bytes) {
            Some(kind) => Ok(Some((kind, bytes.clone()))),
            None => Err(Refusal {
                field: "image",
                message: lang.t("post-error-image-type", ()),
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            }),
        },
    }
}

/// Stores the image file and its row; returns the row's id.
async fn save_image(
    tx: &mut TxConn,
    blog: &BlogConfig,
    uploader: i64,
    (kind, bytes): (ImageType, axum::body::Bytes),
) -> Result<i64, HttpError> {
    let name = uploads::store(&blog.upload_dir, kind, &bytes)
        .await
        .map_err(HttpError::internal)?;
    let row = tx
        .query(
            "INSERT INTO images (file_name, content_type, size, uploader_id, created_at) \
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(kind.mime())
        .bind(bytes.len() as i64)
        .bind(uploader)
        .bind(now())
        .fetch_one(&mut *tx)
        .await
        .map_err(flagon_db::Error::from)?;
    Ok(flagon_db::sqlx::Row::try_get(&row, 0).map_err(flagon_db::Error::from)?)
}

fn show_url(app: &AppHandle, slug: &str) -> Result<String, HttpError> {
    app.url_for("posts.show", [("slug", slug)])
        .map_err(HttpError::internal)
}

/// `GET /posts/new`.
pub async fn new_form(
    user: CurrentUser<Account>,
    tpl: Templates,
    lang: Lang,
) -> Result<Response, HttpError> {
    refuse_create(&user, &lang)?;
    render_form(&tpl, None, &Values::default(), None).await
}

/// `POST /posts/new`: fields `title`, `body` (Markdown), `category`, `tags`
/// (comma-separated), `published` (a checkbox; or `status=published`), `image` (a file),
/// `csrf_token`. 303 to the new post.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    user: CurrentUser<Account>,
    app: AppHandle,
    db: Db,
    tpl: Templates,
    lang: Lang,
    session: Session,
    blog: Ext<BlogConfig>,
    req: Request,
) -> Result<Response, HttpError> {
    refuse_create(&user, &lang)?;
    let form = form::read(req, &app, blog.max_upload_bytes).await?;
    let values = Values::of(&form);
    let input = match values.input().check() {
        Ok(input) => input,
        Err(e) => return render_form(&tpl, None, &values, Some(Refusal::input(&lang, &e))).await,
    };
    let image = match image_of(&form, &blog, &lang) {
        Ok(image) => image,
        Err(refusal) => return render_form(&tpl, None, &values, Some(refusal)).await,
    };
    let mut tx = db.begin().await?;
    let image_id = match image {
        Some(image) => Some(save_image(&mut tx, &blog, user.id, image).await?),
        None => None,
    };
    let (_, slug) = content::insert_post(&mut tx, user.id, &input, image_id).await?;
    tx.commit().await?;
    content::changed(&app).await;
    session.flash_message(
        Message::new("post-saved").fallback("The post is saved."),
        "success",
    )?;
    Ok(Redirect::to(&show_url(&app, &slug)?).into_response())
}

/// The post `slug` if `user` may edit it: a 404 when it does not exist or is a draft they
/// may not see, a 403 when they may see but not edit it.
async fn editable(
    app: &AppHandle,
    db: &Db,
    lang: &Lang,
    user: &Account,
    slug: &str,
) -> Result<Post, HttpError> {
    let post = Post::by_slug(db, slug)
        .await?
        .filter(|p| views::may_see(Some(user), p.author_id, &p.status))
        .ok_or_else(|| pages::not_found(app, lang.locale().as_str()))?;
    if !user.may_edit(post.author_id) {
        return Err(HttpError::forbidden(lang.t("post-forbidden", ())));
    }
    Ok(post)
}

/// `GET /posts/{slug}/edit`.
pub async fn edit_form(
    user: CurrentUser<Account>,
    app: AppHandle,
    db: Db,
    tpl: Templates,
    lang: Lang,
    Path(slug): Path<String>,
) -> Result<Response, HttpError> {
    let post = editable(&app, &db, &lang, &user, &slug).await?;
    let values = Values::of_post(&db, &post).await?;
    render_form(&tpl, Some(&post), &values, None).await
}

/// `POST /posts/{slug}/edit`: the fields of `POST /posts/new`; the slug stays. A new image
/// replaces the old one; none keeps it.
#[allow(clippy::too_many_arguments)]
pub async fn update(
    user: CurrentUser<Account>,
    app: AppHandle,
    db: Db,
    tpl: Templates,
    lang: Lang,
    session: Session,
    blog: Ext<BlogConfig>,
    Path(slug): Path<String>,
    req: Request,
) -> Result<Response, HttpError> {
    let post = editable(&app, &db, &lang, &user, &slug).await?;
    let form = form::read(req, &app, blog.max_upload_bytes).await?;
    let values = Values::of(&form);
    let input = match values.input().check() {
        Ok(input) => input,
        Err(e) => {
            let refusal = Refusal::input(&lang, &e);
            return render_form(&tpl, Some(&post), &values, Some(refusal)).await;
        }
    };
    let image = match image_of(&form, &blog, &lang) {
        Ok(image) => image,
        Err(refusal) => return render_form(&tpl, Some(&post), &values, Some(refusal)).await,
    };
    let mut tx = db.begin().await?;
    let image_id = match image {
        Some(image) => Some(save_image(&mut tx, &blog, user.id, image).await?),
        None => None,
    };
    content::update_post(&mut tx, post.id, &input, image_id).await?;
    tx.commit().await?;
    content::changed(&app).await;
    session.flash_message(
        Message::new("post-saved").fallback("The post is saved."),
        "success",
    )?;
    Ok(Redirect::to(&show_url(&app, &post.slug)?).into_response())
}

/// `POST /posts/{slug}/delete` (the author, editors): 303 to the index.
pub async fn delete(
    user: CurrentUser<Account>,
    app: AppHandle,
    db: Db,
    lang: Lang,
    session: Session,
    Path(slug): Path<String>,
) -> Result<Response, HttpError> {
    let post = editable(&app, &db, &lang, &user, &slug).await?;
    let mut tx = db.begin().await?;
    content::delete_post(&mut tx, post.id).await?;
    tx.commit().await?;
    content::changed(&app).await;
    session.flash_message(
        Message::new("post-deleted").fallback("The post is deleted."),
        "success",
    )?;
    let home = app
        .url_for("posts.index", ())
        .map_err(HttpError::internal)?;
    Ok(Redirect::to(&home).into_response())
}
