//! A small HTTP/1.1 client for the blog processes: a cookie jar that one "browser" shares
//! across instances (cookies are per host, not per port, as behind one load balancer),
//! form posts, redirects left to the caller.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use flagon::bytes::Bytes;
use flagon::http;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// One user agent: a cookie jar and the instance it talks to.
#[derive(Clone)]
pub struct Agent {
    base: String,
    jar: Arc<Mutex<BTreeMap<String, String>>>,
    client: Client<HttpConnector, Full<Bytes>>,
    forwarded_for: Option<String>,
}

/// A response, read whole.
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Resp {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Location`.
    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body: String = self.body.chars().take(2000).collect();
        write!(f, "{} {:?}\n{body}", self.status, self.headers)
    }
}

impl Agent {
    /// A fresh agent (empty jar) talking to `addr`.
    pub fn new(addr: SocketAddr) -> Agent {
        Agent {
            base: format!("http://{addr}"),
            jar: Arc::default(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            forwarded_for: None,
        }
    }

    /// The same agent (same cookies) talking to another instance.
    pub fn at(&self, addr: SocketAddr) -> Agent {
        Agent {
            base: format!("http://{addr}"),
            ..self.clone()
        }
    }

    /// The same agent presenting itself, through a trusted proxy, as client `ip`.
    pub fn as_client(&self, ip: &str) -> Agent {
        Agent {
            forwarded_for: Some(ip.to_owned()),
            ..self.clone()
        }
    }

    /// The value of cookie `name`, if the jar has it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(name).cloned()
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], Bytes::new()).await
    }

    /// `POST path` with an urlencoded form.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(
            "POST",
            path,
            &[("content-type", "application/x-www-form-urlencoded")],
            Bytes::from(body),
        )
        .await
    }

    /// Any request; cookies from the jar are sent and `Set-Cookie` kept.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Resp {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        let cookies = {
            let jar = self.jar.lock().unwrap();
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if !cookies.is_empty() {
            req = req.header("cookie", cookies);
        }
        if let Some(ip) = &self.forwarded_for {
            req = req.header("x-forwarded-for", ip.as_str());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body)).expect("a valid request");
        let res = self
            .client
            .request(req)
            .await
            .unwrap_or_else(|e| panic!("{method} {}{path}: {e}", self.base));
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.expect("reads the body").to_bytes();
        {
            let mut jar = self.jar.lock().unwrap();
            for v in parts.headers.get_all("set-cookie") {
                let Ok(v) = v.to_str() else { continue };
                let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
                let Some((name, value)) = pair.split_once('=') else {
                    continue;
                };
                let attrs = attrs.to_ascii_lowercase();
                let gone = value.is_empty()
                    || attrs.contains("max-age=0")
                    || attrs.contains("expires=thu, 01 jan 1970");
                if gone {
                    jar.remove(name.trim());
                } else {
                    jar.insert(name.trim().to_owned(), value.trim().to_owned());
                }
            }
        }
        Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

/// The value of the first `name="csrf_token"` field in `page`.
pub fn csrf_token(page: &str) -> String {
    field_value(page, "csrf_token").unwrap_or_else(|| panic!("no csrf_token field in: {page}"))
}

/// The `value` of the first input named `name` in `page`.
pub fn field_value(page: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\"");
    let at = page.find(&needle)?;
    let tag_start = page[..at].rfind('<')?;
    let tag_end = page[at..].find('>')? + at;
    let tag = &page[tag_start..tag_end];
    let v = tag.find("value=\"")? + "value=\"".len();
    let end = tag[v..].find('"')? + v;
    Some(tag[v..end].to_owned())
}

#[test]
fn fields_are_found_whatever_the_attribute_order() {
    let page = r#"<form><input type="hidden" value="abc" name="csrf_token"><input name="x" value="1"></form>"#;
    assert_eq!(csrf_token(page), "abc");
    assert_eq!(field_value(page, "x").as_deref(), Some("1"));
    assert_eq!(field_value(page, "y"), None);
}
