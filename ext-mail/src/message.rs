//! [`Message`]: Flask-Mail's `Message`, built with checked headers, and [`Prepared`], the
//! bytes and envelope that transports send and the outbox stores.

use std::time::{SystemTime, UNIX_EPOCH};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{MultiPart, SinglePart};

use crate::address::{Address, Mailbox, check_text};
use crate::error::{AddressError, Error};

/// Headers Flagon writes itself: setting one as an extra header is an error.
const RESERVED: &[&str] = &[
    "from",
    "sender",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "content-id",
];

/// Something that can be a [`Mailbox`]: `"ann@example.com"`, `"Ann <ann@example.com>"`, a
/// `(name, address)` pair, a [`Mailbox`] or an [`Address`].
pub trait IntoMailbox {
    /// The mailbox, or why not.
    fn into_mailbox(self) -> Result<Mailbox, AddressError>;
}

impl IntoMailbox for &str {
    fn into_mailbox(self) -> Result<Mailbox, AddressError> {
        self.parse()
    }
}

impl IntoMailbox for String {
    fn into_mailbox(self) -> Result<Mailbox, AddressError> {
        self.parse()
    }
}

impl IntoMailbox for &String {
    fn into_mailbox(self) -> Result<Mailbox, AddressError> {
        self.parse()
    }
}

impl IntoMailbox for Mailbox {
    fn into_mailbox(self) -> Result<Mailbox, AddressError> {
        Ok(self)
    }
}

impl IntoMailbox for &Mailbox {
    fn into_mailbox(self) -> Result<Mailbox, AddressError> {
        Ok(self.clone())
    }
}

impl IntoMailbox for Address {
    fn into_mailbox(self) -> Result<Mailbox, AddressError> {
        Ok(self.into())
    }
}

impl IntoMailbox for (&str, &str) {
    fn into_mailbox(self) -> Result<Mailbox, AddressError> {
        Mailbox::new(Some(self.0), self.1)
    }
}

/// A file attached to a message, or an image shown inline by `Content-ID`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    filename: String,
    content_type: String,
    data: Vec<u8>,
    content_id: Option<String>,
}

impl Attachment {
    /// An attachment named `filename` (any path before the name is dropped), its content
    /// type guessed from the extension (`application/octet-stream` when unknown). A
    /// non-ASCII name is written with RFC 2231.
    pub fn new(filename: &str, data: impl Into<Vec<u8>>) -> Attachment {
        let filename = filename
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(filename)
            .to_owned();
        Attachment {
            content_type: guess_content_type(&filename).to_owned(),
            filename,
            data: data.into(),
            content_id: None,
        }
    }

    /// An image (or any part) shown inline, referenced from the HTML as `cid:{content_id}`.
    /// The message becomes `multipart/related`.
    pub fn inline(content_id: &str, filename: &str, data: impl Into<Vec<u8>>) -> Attachment {
        let mut a = Attachment::new(filename, data);
        a.content_id = Some(content_id.to_owned());
        a
    }

    /// Sets the content type (`"application/pdf"`), instead of the guess.
    pub fn content_type(mut self, content_type: &str) -> Attachment {
        content_type.clone_into(&mut self.content_type);
        self
    }

    /// The file name.
    pub fn filename(&self) -> &str {
        &self.filename
    }

    /// The content type.
    pub fn mime_type(&self) -> &str {
        &self.content_type
    }

    /// The bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The `Content-ID` of an inline part.
    pub fn content_id(&self) -> Option<&str> {
        self.content_id.as_deref()
    }

    fn check(&self) -> Result<ContentType, Error> {
        check_text(&self.filename).map_err(|problem| Error::Header {
            field: "attachment filename".into(),
            problem,
        })?;
        if let Some(cid) = &self.content_id {
            check_text(cid).map_err(|problem| Error::Header {
                field: "Content-ID".into(),
                problem,
            })?;
            if cid.is_empty() || cid.chars().any(|c| c.is_whitespace() || "<>\"".contains(c)) {
                return Err(Error::ReservedHeader(format!("Content-ID {cid}")));
            }
        }
        ContentType::parse(&self.content_type).map_err(|e| Error::Build(e.into()))
    }

    fn part(&self, content_type: ContentType) -> SinglePart {
        let builder = match &self.content_id {
            Some(cid) => lettre::message::Attachment::new_inline_with_name(
                cid.clone(),
                self.filename.clone(),
            ),
            None => lettre::message::Attachment::new(self.filename.clone()),
        };
        builder.body(self.data.clone(), content_type)
    }
}

/// The content type for a file name's extension.
pub fn guess_content_type(filename: &str) -> &'static str {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "text" | "log" => "text/plain; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "ics" => "text/calendar; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// A mail message (Flask-Mail's `Message`), built with [`Message::builder`].
///
/// Every address and header is checked when it is set (see [`Mailbox`]); the first problem
/// is returned by [`MessageBuilder::build`], naming the field. `bcc` recipients are in the
/// envelope only, never in the headers.
///
/// ```
/// use flagon_mail::{Attachment, Message};
///
/// let msg = Message::builder()
///     .from("Shop <shop@example.com>")
///     .to("Ann <ann@example.com>")
///     .bcc("audit@example.com")
///     .subject("Your order — 3 items")
///     .text("Thanks for your order.")
///     .html("<p>Thanks for your order.</p><img src=\"cid:logo\">")
///     .attach(Attachment::new("invoice.pdf", b"%PDF-1.7".to_vec()))
///     .attach(Attachment::inline("logo", "logo.png", vec![0x89, b'P', b'N', b'G']))
///     .build()
///     .unwrap();
/// assert_eq!(msg.recipients().len(), 2);
///
/// let bad = Message::builder().to("ann@example.com").subject("Hi\r\nBcc: evil@example.net").build();
/// assert!(bad.is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    subject: String,
    from: Option<Mailbox>,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    bcc: Vec<Mailbox>,
    reply_to: Vec<Mailbox>,
    headers: Vec<(String, String)>,
    date: Option<SystemTime>,
    message_id: Option<String>,
    text: Option<String>,
    html: Option<String>,
    attachments: Vec<Attachment>,
}

/// Builds a [`Message`]; see there.
#[derive(Debug)]
#[must_use]
pub struct MessageBuilder {
    msg: Message,
    error: Option<Error>,
}

impl Message {
    /// A builder for a message.
    pub fn builder() -> MessageBuilder {
        MessageBuilder {
            msg: Message {
                subject: String::new(),
                from: None,
                to: Vec::new(),
                cc: Vec::new(),
                bcc: Vec::new(),
                reply_to: Vec::new(),
                headers: Vec::new(),
                date: None,
                message_id: None,
                text: None,
                html: None,
                attachments: Vec::new(),
            },
            error: None,
        }
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The sender, if set (else `mail.default_sender` is used).
    pub fn from(&self) -> Option<&Mailbox> {
        self.from.as_ref()
    }

    /// `To`.
    pub fn to(&self) -> &[Mailbox] {
        &self.to
    }

    /// `Cc`.
    pub fn cc(&self) -> &[Mailbox] {
        &self.cc
    }

    /// Blind copies: envelope only.
    pub fn bcc(&self) -> &[Mailbox] {
        &self.bcc
    }

    /// `Reply-To`.
    pub fn reply_to(&self) -> &[Mailbox] {
        &self.reply_to
    }

    /// The plain-text body.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The HTML body.
    pub fn html(&self) -> Option<&str> {
        self.html.as_deref()
    }

    /// Attachments and inline parts.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// Extra headers.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The `Message-ID` set on the builder, if any (otherwise one is made when the message
    /// is sent or queued).
    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// Every envelope recipient: to, cc and bcc, each address once.
    pub fn recipients(&self) -> Vec<Address> {
        let mut out: Vec<Address> = Vec::new();
        for m in self.to.iter().chain(&self.cc).chain(&self.bcc) {
            if !out.contains(m.address()) {
                out.push(m.address().clone());
            }
        }
        out
    }

    /// Fixes the sender, date and `Message-ID` (each kept if already set) and writes the
    /// message: what is sent, stored in the outbox and recorded by the test transport.
    pub fn prepare(&self, default_sender: Option<&Mailbox>) -> Result<Prepared, Error> {
        let mut msg = self.clone();
        if msg.from.is_none() {
            msg.from = default_sender.cloned();
        }
        let Some(from) = msg.from.clone() else {
            return Err(Error::NoSender);
        };
        let recipients = msg.recipients();
        if recipients.is_empty() {
            return Err(Error::NoRecipients);
        }
        let date = *msg.date.get_or_insert_with(SystemTime::now);
        let message_id = msg
            .message_id
            .get_or_insert_with(|| make_message_id(from.address().domain()))
            .clone();
        let raw = msg.write(&from, date, &message_id)?;
        Ok(Prepared {
            message_id,
            from: from.address().clone(),
            recipients,
            raw,
            message: Some(msg),
        })
    }

    fn write(&self, from: &Mailbox, date: SystemTime, message_id: &str) -> Result<Vec<u8>, Error> {
        let mut b = lettre::Message::builder()
            .from(from.lettre())
            .subject(self.subject.clone())
            .date(date)
            .message_id(Some(message_id.to_owned()));
        for m in &self.to {
            b = b.to(m.lettre());
        }
        for m in &self.cc {
            b = b.cc(m.lettre());
        }
        for m in &self.bcc {
            b = b.bcc(m.lettre());
        }
        for m in &self.reply_to {
            b = b.reply_to(m.lettre());
        }
        for (name, value) in &self.headers {
            let name = HeaderName::new_from_ascii(name.clone())
                .map_err(|_| Error::ReservedHeader(name.clone()))?;
            b = b.raw_header(HeaderValue::new(name, value.clone()));
        }
        let body = match (&self.text, &self.html) {
            (Some(t), Some(h)) => {
                Body::Multi(MultiPart::alternative_plain_html(t.clone(), h.clone()))
            }
            (None, Some(h)) => Body::Single(SinglePart::html(h.clone())),
            (Some(t), None) => Body::Single(SinglePart::plain(t.clone())),
            (None, None) => Body::Single(SinglePart::plain(String::new())),
        };
        let mut inline = Vec::new();
        let mut files = Vec::new();
        for a in &self.attachments {
            let ct = a.check()?;
            if a.content_id.is_some() {
                inline.push(a.part(ct));
            } else {
                files.push(a.part(ct));
            }
        }
        let body = if inline.is_empty() {
            body
        } else {
            let mut related = body.into_multipart(MultiPart::related());
            for p in inline {
                related = related.singlepart(p);
            }
            Body::Multi(related)
        };
        let body = if files.is_empty() {
            body
        } else {
            let mut mixed = body.into_multipart(MultiPart::mixed());
            for p in files {
                mixed = mixed.singlepart(p);
            }
            Body::Multi(mixed)
        };
        let built = match body {
            Body::Single(p) => b.singlepart(p),
            Body::Multi(m) => b.multipart(m),
        };
        let msg = built.map_err(|e| Error::Build(e.into()))?;
        Ok(msg.formatted())
    }
}

enum Body {
    Single(SinglePart),
    Multi(MultiPart),
}

impl Body {
    fn into_multipart(self, kind: lettre::message::MultiPartBuilder) -> MultiPart {
        match self {
            Body::Single(p) => kind.singlepart(p),
            Body::Multi(m) => kind.multipart(m),
        }
    }
}

impl MessageBuilder {
    fn fail(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn mailbox(&mut self, field: &'static str, m: impl IntoMailbox) -> Option<Mailbox> {
        match m.into_mailbox() {
            Ok(m) => Some(m),
            Err(source) => {
                self.fail(Error::Address { field, source });
                None
            }
        }
    }

    /// The subject (free text: non-ASCII is RFC 2047-encoded; line breaks, controls and
    /// bidi marks are refused).
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        let subject = subject.into();
        match check_text(&subject) {
            Ok(()) => self.msg.subject = subject,
            Err(problem) => self.fail(Error::Header {
                field: "Subject".into(),
                problem,
            }),
        }
        self
    }

    /// The sender (default: `mail.default_sender`).
    pub fn from(mut self, m: impl IntoMailbox) -> Self {
        self.msg.from = self.mailbox("from", m);
        self
    }

    /// Adds a `To` recipient.
    pub fn to(mut self, m: impl IntoMailbox) -> Self {
        if let Some(m) = self.mailbox("to", m) {
            self.msg.to.push(m);
        }
        self
    }

    /// Adds a `Cc` recipient.
    pub fn cc(mut self, m: impl IntoMailbox) -> Self {
        if let Some(m) = self.mailbox("cc", m) {
            self.msg.cc.push(m);
        }
        self
    }

    /// Adds a blind recipient: in the envelope, never in a header.
    pub fn bcc(mut self, m: impl IntoMailbox) -> Self {
        if let Some(m) = self.mailbox("bcc", m) {
            self.msg.bcc.push(m);
        }
        self
    }

    /// Adds a `Reply-To` address.
    pub fn reply_to(mut self, m: impl IntoMailbox) -> Self {
        if let Some(m) = self.mailbox("reply_to", m) {
            self.msg.reply_to.push(m);
        }
        self
    }

    /// Adds an extra header (`List-Unsubscribe`, `X-Campaign`). The name must be a plain
    /// header name and not one Flagon writes; the value is free text.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        let valid_name = !name.is_empty()
            && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
            && !RESERVED.contains(&name.to_ascii_lowercase().as_str());
        if !valid_name {
            self.fail(Error::ReservedHeader(name.to_owned()));
        } else if let Err(problem) = check_text(&value) {
            self.fail(Error::Header {
                field: name.to_owned(),
                problem,
            });
        } else {
            self.msg.headers.push((name.to_owned(), value));
        }
        self
    }

    /// The `Date` (default: when the message is sent or queued).
    pub fn date(mut self, date: SystemTime) -> Self {
        self.msg.date = Some(date);
        self
    }

    /// The `Message-ID`, with its angle brackets (default: one made from a random id and
    /// the sender's domain when the message is sent or queued, kept across retries).
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        let ok = id.starts_with('<')
            && id.ends_with('>')
            && id.contains('@')
            && check_text(&id).is_ok()
            && !id.chars().any(char::is_whitespace);
        if ok {
            self.msg.message_id = Some(id);
        } else {
            self.fail(Error::ReservedHeader(format!("Message-ID {id}")));
        }
        self
    }

    /// The plain-text body.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.msg.text = Some(text.into());
        self
    }

    /// The HTML body (with a text body: `multipart/alternative`).
    pub fn html(mut self, html: impl Into<String>) -> Self {
        self.msg.html = Some(html.into());
        self
    }

    /// Attaches a file or an inline part.
    pub fn attach(mut self, a: Attachment) -> Self {
        if let Err(e) = a.check() {
            self.fail(e);
        } else {
            self.msg.attachments.push(a);
        }
        self
    }

    /// The message, or the first problem met.
    pub fn build(self) -> Result<Message, Error> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.msg),
        }
    }
}

/// A unique `Message-ID` on `domain`.
pub(crate) fn make_message_id(domain: &str) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let r: u128 = rand::random();
    format!("<{millis:x}.{r:032x}@{domain}>")
}

/// A message ready to go: its `Message-ID`, envelope and the RFC 5322 bytes (CRLF line
/// endings, no `Bcc` header).
#[derive(Clone, Debug)]
pub struct Prepared {
    message_id: String,
    from: Address,
    recipients: Vec<Address>,
    raw: Vec<u8>,
    message: Option<Message>,
}

impl Prepared {
    /// Rebuilds a prepared message from stored parts (the outbox).
    #[cfg(feature = "db")]
    pub(crate) fn from_parts(
        message_id: String,
        from: Address,
        recipients: Vec<Address>,
        raw: Vec<u8>,
    ) -> Prepared {
        Prepared {
            message_id,
            from,
            recipients,
            raw: normalize_crlf(&raw),
            message: None,
        }
    }

    /// The `Message-ID`, with angle brackets.
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// The envelope sender.
    pub fn envelope_from(&self) -> &Address {
        &self.from
    }

    /// The envelope recipients (to, cc and bcc).
    pub fn recipients(&self) -> &[Address] {
        &self.recipients
    }

    /// The message as sent.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The message as text (lossy for non-UTF-8 bytes; Flagon writes 7-bit messages).
    pub fn raw_str(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// The message it was made from (with sender, date and id filled in); `None` for a
    /// message read back from the SQL outbox, which keeps only the bytes.
    pub fn message(&self) -> Option<&Message> {
        self.message.as_ref()
    }

    /// The same message for fewer recipients (a retry of the deferred ones).
    pub(crate) fn with_recipients(&self, recipients: Vec<Address>) -> Prepared {
        Prepared {
            recipients,
            ..self.clone()
        }
    }
}

/// `raw` with every line ending CRLF: a bare LF or a bare CR becomes CRLF, so that the SMTP
/// codec's dot-stuffing (which looks for a `.` after CRLF) sees every line start.
pub fn normalize_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if raw.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MessageBuilder {
        Message::builder()
            .from("Shop <shop@example.com>")
            .to("Ann <ann@example.com>")
    }

    #[test]
    fn reply_to_date_and_extra_headers_are_written() {
        let date = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let p = sample()
            .reply_to("Support <help@example.com>")
            .cc("cc@example.com")
            .header("X-Campaign", "spring — 2026")
            .header("List-Unsubscribe", "<https://example.com/u>")
            .date(date)
            .message_id("<fixed@example.com>")
            .text("hi")
            .build()
            .unwrap()
            .prepare(None)
            .unwrap();
        let raw = p.raw_str();
        assert!(
            raw.contains("Reply-To: Support <help@example.com>"),
            "{raw}"
        );
        assert!(raw.contains("Cc: cc@example.com"), "{raw}");
        assert!(
            raw.contains("Date: Tue, 14 Nov 2023 22:13:20 +0000"),
            "{raw}"
        );
        assert!(
            raw.contains("X-Campaign: spring =?utf-8?") && raw.is_ascii(),
            "non-ASCII values are encoded: {raw}"
        );
        assert!(
            raw.contains("List-Unsubscribe: <https://example.com/u>"),
            "{raw}"
        );
        assert_eq!(p.message_id(), "<fixed@example.com>");
        assert_eq!(guess_content_type("a.PNG"), "image/png");
        assert_eq!(guess_content_type("noext"), "application/octet-stream");
        assert!(sample().message_id("no-brackets").build().is_err());
    }

    #[test]
    fn line_endings_are_normalised_to_crlf() {
        assert_eq!(
            normalize_crlf(b"a\nb\rc\r\nd\n.\n"),
            b"a\r\nb\r\nc\r\nd\r\n.\r\n"
        );
    }

    #[test]
    fn bcc_is_in_the_envelope_only() {
        let p = sample()
            .bcc("secret@example.com")
            .text("hi")
            .build()
            .unwrap()
            .prepare(None)
            .unwrap();
        assert!(
            p.recipients()
                .iter()
                .any(|a| a.as_str() == "secret@example.com")
        );
        assert!(
            !p.raw_str().contains("secret@example.com"),
            "{}",
            p.raw_str()
        );
        assert!(!p.raw_str().to_ascii_lowercase().contains("bcc:"));
    }

    #[test]
    fn the_message_id_is_stable_once_prepared() {
        let p = sample().text("hi").build().unwrap().prepare(None).unwrap();
        assert!(p.message_id().ends_with("@example.com>"));
        let again = p.message().unwrap().prepare(None).unwrap();
        assert_eq!(again.message_id(), p.message_id());
        assert!(
            p.raw_str()
                .contains(&format!("Message-ID: {}", p.message_id()))
        );
    }

    #[test]
    fn non_ascii_subjects_and_names_are_rfc2047_encoded() {
        let p = Message::builder()
            .from(("Zoë", "zoe@example.com"))
            .to("ann@example.com")
            .subject("Grüße — ünïcødé")
            .text("x")
            .build()
            .unwrap()
            .prepare(None)
            .unwrap();
        let raw = p.raw_str();
        assert!(raw.is_ascii(), "{raw}");
        assert!(raw.contains("Subject: =?utf-8?"), "{raw}");
        assert!(raw.contains("From: =?utf-8?"), "{raw}");
    }

    #[test]
    fn subjects_and_headers_refuse_injection_with_a_typed_error() {
        for bad in [
            "Hi\r\nBcc: evil@example.net",
            "Hi\nX",
            "Hi\u{2068}x\u{2069}",
            "a%0D%0Ab",
        ] {
            let e = sample().subject(bad).build().unwrap_err();
            assert!(matches!(e, Error::Header { .. }), "{bad:?}: {e}");
        }
        let e = sample()
            .header("X-Tag", "a\r\nBcc: evil@example.net")
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Header { .. }));
        let e = sample()
            .header("Bcc", "evil@example.net")
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::ReservedHeader(_)));
        let e = sample().header("X Tag", "v").build().unwrap_err();
        assert!(matches!(e, Error::ReservedHeader(_)));
        let e = sample()
            .to("x@example.com\r\nBcc: e@example.net")
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Address { field: "to", .. }), "{e}");
    }

    #[test]
    fn a_message_needs_a_sender_and_recipients() {
        let m = Message::builder()
            .to("a@example.com")
            .text("x")
            .build()
            .unwrap();
        assert!(matches!(m.prepare(None), Err(Error::NoSender)));
        let default = "app@example.com".parse().unwrap();
        assert!(m.prepare(Some(&default)).is_ok());
        let m = Message::builder()
            .from("a@example.com")
            .text("x")
            .build()
            .unwrap();
        assert!(matches!(m.prepare(None), Err(Error::NoRecipients)));
    }

    #[test]
    fn attachments_use_rfc2231_names_and_inline_parts_make_multipart_related() {
        let p = sample()
            .text("t")
            .html("<img src=\"cid:logo\">")
            .attach(Attachment::new("dir/Bericht März.pdf", b"%PDF".to_vec()))
            .attach(Attachment::inline("logo", "logo.png", vec![1, 2, 3]))
            .build()
            .unwrap()
            .prepare(None)
            .unwrap();
        let raw = p.raw_str();
        assert!(raw.contains("multipart/mixed"), "{raw}");
        assert!(raw.contains("multipart/related"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("filename*"), "{raw}");
        assert!(raw.contains("Content-ID: <logo>"), "{raw}");
        assert!(raw.contains("application/pdf"));
        let e = sample()
            .attach(Attachment::new("a\r\nb.txt", vec![]))
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Header { .. }));
    }
}
