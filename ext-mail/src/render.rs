//! Templated mail: `mail/NAME.subject.txt`, `mail/NAME.txt` and `mail/NAME.html` rendered
//! with core's templates.

use flagon::Locale;
use flagon::templates::Templates;
use serde::Serialize;

use crate::error::Error;
use crate::mail::Mail;
use crate::message::{Message, MessageBuilder};

impl Mail {
    /// Renders the templates of mail `name` with `ctx` into a message builder: the subject
    /// from `mail/{name}.subject.txt` (trimmed; a line break in it is an error, not a new
    /// header), the text body from `mail/{name}.txt`, the HTML body from `mail/{name}.html`
    /// (autoescaped). Any of them may be absent, but not all. Add recipients (and inline
    /// images the HTML references as `cid:…`) to the builder.
    ///
    /// ```no_run
    /// # async fn f(mail: flagon_mail::Mail) -> Result<(), flagon_mail::Error> {
    /// use flagon::templates::context;
    /// let msg = mail.render("welcome", context! { name => "Ann" }).await?
    ///     .to("ann@example.com")
    ///     .build()?;
    /// mail.enqueue(&msg).await?;
    /// # Ok(()) }
    /// ```
    pub async fn render(&self, name: &str, ctx: impl Serialize) -> Result<MessageBuilder, Error> {
        let templates = Templates::for_app(self.app()).ok_or_else(|| Error::Template {
            name: name.to_owned(),
            source: "the app was built without templates".into(),
        })?;
        render_with(&templates, name, ctx).await
    }

    /// [`Mail::render`] in the recipient's `locale` (core's
    /// [`Templates::for_locale`]): translating template functions (an i18n extension's `_()`)
    /// translate into it, and templates see it as `locale`.
    pub async fn render_for(
        &self,
        locale: &Locale,
        name: &str,
        ctx: impl Serialize,
    ) -> Result<MessageBuilder, Error> {
        let templates =
            Templates::for_locale(self.app(), locale.clone()).ok_or_else(|| Error::Template {
                name: name.to_owned(),
                source: "the app was built without templates".into(),
            })?;
        let ctx = flagon::templates::context! { locale => locale.as_str(), ..flagon::templates::Value::from_serialize(ctx) };
        render_with(&templates, name, ctx).await
    }
}

async fn render_with(
    templates: &Templates,
    name: &str,
    ctx: impl Serialize,
) -> Result<MessageBuilder, Error> {
    let ctx = flagon::templates::Value::from_serialize(ctx);
    let subject_t = format!("mail/{name}.subject.txt");
    let text_t = format!("mail/{name}.txt");
    let html_t = format!("mail/{name}.html");
    let render = |t: String| {
        let ctx = ctx.clone();
        async move {
            if !templates.exists(&t) {
                return Ok(None);
            }
            templates
                .render_string(&t, ctx)
                .await
                .map(Some)
                .map_err(|e| Error::Template {
                    name: t.clone(),
                    source: Box::new(e),
                })
        }
    };
    let subject = render(subject_t).await?;
    let text = render(text_t.clone()).await?;
    let html = render(html_t.clone()).await?;
    if subject.is_none() && text.is_none() && html.is_none() {
        return Err(Error::Template {
            name: name.to_owned(),
            source: format!("none of mail/{name}.subject.txt, {text_t}, {html_t} exists").into(),
        });
    }
    let mut b = Message::builder();
    if let Some(s) = subject {
        b = b.subject(s.trim().to_owned());
    }
    if let Some(t) = text {
        b = b.text(t);
    }
    if let Some(h) = html {
        b = b.html(h);
    }
    Ok(b)
}
