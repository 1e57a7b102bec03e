//! Policies: the settings of one route, and their precompiled header values.

use std::fmt::Write as _;

use flagon::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_REPORT_ONLY, REFERRER_POLICY,
    STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use flagon::http::{HeaderName, HeaderValue};

use crate::config::{PolicyOverride, SecureHeadersConfig};

/// `Permissions-Policy` (not among `http`'s constants).
pub(crate) const PERMISSIONS_POLICY: HeaderName = HeaderName::from_static("permissions-policy");

/// Where the nonce goes while the CSP is assembled (never valid in a header).
const MARK: char = '\u{0}';

/// The settings that can differ per route, fully resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Spec {
    pub(crate) force_https: bool,
    pub(crate) csp: String,
    pub(crate) report_only: bool,
    pub(crate) nonce_in: Vec<String>,
    pub(crate) frame_options: String,
    pub(crate) referrer_policy: String,
    pub(crate) permissions_policy: String,
}

impl Spec {
    pub(crate) fn from_config(c: &SecureHeadersConfig) -> Spec {
        Spec {
            force_https: c.force_https,
            csp: c.content_security_policy.clone(),
            report_only: c.content_security_policy_report_only,
            nonce_in: c.csp_nonce_in.clone(),
            frame_options: c.frame_options.clone(),
            referrer_policy: c.referrer_policy.clone(),
            permissions_policy: c.permissions_policy.clone(),
        }
    }

    /// This spec with `o`'s set fields applied.
    pub(crate) fn with(&self, o: &PolicyOverride) -> Spec {
        let mut s = self.clone();
        if let Some(v) = o.force_https {
            s.force_https = v;
        }
        if let Some(v) = &o.content_security_policy {
            s.csp = v.clone();
        }
        if let Some(v) = o.content_security_policy_report_only {
            s.report_only = v;
        }
        if let Some(v) = &o.csp_nonce_in {
            s.nonce_in = v.clone();
        }
        if let Some(v) = &o.frame_options {
            s.frame_options = v.clone();
        }
        if let Some(v) = &o.referrer_policy {
            s.referrer_policy = v.clone();
        }
        if let Some(v) = &o.permissions_policy {
            s.permissions_policy = v.clone();
        }
        s
    }

    /// Precompiles the header values. An error names the offending key (relative to the
    /// policy: `frame_options`, …) and what is wrong.
    pub(crate) fn compile(&self) -> Result<Compiled, (&'static str, String)> {
        let csp = if self.csp.trim().is_empty() {
            None
        } else {
            for d in &self.nonce_in {
                if d.is_empty() || !d.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
                    return Err((
                        "csp_nonce_in",
                        format!("`{d}` is not a CSP directive name (like `script-src`)"),
                    ));
                }
            }
            if self.csp.contains(MARK) {
                return Err(("content_security_policy", "contains a NUL character".into()));
            }
            let parts: Vec<String> = assemble_csp(&self.csp, &self.nonce_in)
                .split(MARK)
                .map(str::to_owned)
                .collect();
            let sample = parts.join("AAAAAAAAAAAAAAAAAAAAAA==");
            let value = ascii_value(&sample).ok_or_else(|| {
                (
                    "content_security_policy",
                    "is not a valid header value (control characters or non-ASCII text)".into(),
                )
            })?;
            Some(Csp {
                name: if self.report_only {
                    CONTENT_SECURITY_POLICY_REPORT_ONLY
                } else {
                    CONTENT_SECURITY_POLICY
                },
                fixed: (parts.len() == 1).then_some(value),
                parts,
            })
        };
        let mut fixed = Vec::new();
        let frame = self.frame_options.trim().to_ascii_uppercase();
        match frame.as_str() {
            "" => {}
            "DENY" | "SAMEORIGIN" => fixed.push((
                X_FRAME_OPTIONS,
                HeaderValue::from_str(&frame).expect("ASCII"),
            )),
            _ => {
                return Err((
                    "frame_options",
                    format!(
                        "`{}` is not one of DENY, SAMEORIGIN or \"\"",
                        self.frame_options
                    ),
                ));
            }
        }
        for (key, name, value) in [
            ("referrer_policy", REFERRER_POLICY, &self.referrer_policy),
            (
                "permissions_policy",
                PERMISSIONS_POLICY,
                &self.permissions_policy,
            ),
        ] {
            if value.trim().is_empty() {
                continue;
            }
            let v = ascii_value(value.trim()).ok_or_else(|| {
                (
                    key,
                    "is not a valid header value (control characters or non-ASCII text)".to_owned(),
                )
            })?;
            fixed.push((name, v));
        }
        Ok(Compiled {
            force_https: self.force_https,
            csp,
            fixed,
        })
    }
}

/// A header value of printable ASCII only (`http` also accepts obsolete 8-bit text).
fn ascii_value(s: &str) -> Option<HeaderValue> {
    if !s.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return None;
    }
    HeaderValue::from_str(s).ok()
}

/// Adds the nonce marker to each directive in `nonce_in`. A directive that is absent starts
/// from `default-src` (its fallback), so adding a nonce never loosens the policy.
fn assemble_csp(csp: &str, nonce_in: &[String]) -> String {
    let mut directives: Vec<(String, String)> = csp
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| match d.split_once(char::is_whitespace) {
            Some((name, value)) => (name.to_ascii_lowercase(), value.trim().to_owned()),
            None => (d.to_ascii_lowercase(), String::new()),
        })
        .collect();
    let nonce = format!("'nonce-{MARK}'");
    for wanted in nonce_in {
        let fallback = directives
            .iter()
            .find(|(n, _)| n == "default-src")
            .map(|(_, v)| v.clone());
        match directives.iter_mut().find(|(n, _)| n == wanted) {
            Some((_, value)) => *value = with_source(value, &nonce),
            None => {
                let base = fallback.unwrap_or_default();
                directives.push((wanted.clone(), with_source(&base, &nonce)));
            }
        }
    }
    let mut out = String::new();
    for (i, (name, value)) in directives.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(name);
        if !value.is_empty() {
            let _ = write!(out, " {value}");
        }
    }
    out
}

/// `value` plus `source`; `'none'` cannot be combined with a source, so it is replaced.
fn with_source(value: &str, source: &str) -> String {
    if value.is_empty() || value.eq_ignore_ascii_case("'none'") {
        source.to_owned()
    } else {
        format!("{value} {source}")
    }
}

/// A route's policy as precompiled header values.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) force_https: bool,
    pub(crate) csp: Option<Csp>,
    /// Headers that never change: frame, referrer and permissions policies.
    pub(crate) fixed: Vec<(HeaderName, HeaderValue)>,
}

impl Compiled {
    /// Whether requests under this policy get a nonce.
    pub(crate) fn wants_nonce(&self) -> bool {
        self.csp.as_ref().is_some_and(|c| c.fixed.is_none())
    }
}

/// A Content-Security-Policy, split where the nonce goes.
#[derive(Debug)]
pub(crate) struct Csp {
    pub(crate) name: HeaderName,
    parts: Vec<String>,
    /// The whole value when there is no nonce.
    fixed: Option<HeaderValue>,
}

impl Csp {
    /// The header value for a request with `nonce`.
    pub(crate) fn value(&self, nonce: Option<&str>) -> Option<HeaderValue> {
        if let Some(v) = &self.fixed {
            return Some(v.clone());
        }
        let nonce = nonce?;
        let len =
            self.parts.iter().map(String::len).sum::<usize>() + nonce.len() * self.parts.len();
        let mut s = String::with_capacity(len);
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                s.push_str(nonce);
            }
            s.push_str(part);
        }
        HeaderValue::from_str(&s).ok()
    }

    /// The value with `{nonce}` where the nonce goes, for `secure-headers show`.
    pub(crate) fn display(&self) -> String {
        self.parts.join("{nonce}")
    }
}

/// The app-wide headers that are not per route.
#[derive(Debug)]
pub(crate) struct Global {
    /// `Strict-Transport-Security`, sent on https requests only (RFC 6797 §7.2).
    pub(crate) hsts: Option<HeaderValue>,
    pub(crate) nosniff: bool,
    pub(crate) permanent_redirect: bool,
    /// Where https redirects go; `None`: the request's host.
    pub(crate) https_host: Option<String>,
}

impl Global {
    pub(crate) fn from_config(c: &SecureHeadersConfig) -> Global {
        let hsts = c.strict_transport_security.then(|| {
            let mut v = format!("max-age={}", c.hsts_max_age);
            if c.hsts_include_subdomains {
                v.push_str("; includeSubDomains");
            }
            if c.hsts_preload {
                v.push_str("; preload");
            }
            HeaderValue::from_str(&v).expect("digits and ASCII words")
        });
        Global {
            hsts,
            nosniff: c.content_type_nosniff,
            permanent_redirect: c.force_https_permanent,
            https_host: c.https_host.clone(),
        }
    }

    /// Header lines for `secure-headers show`.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(h) = &self.hsts {
            out.push(format!(
                "{}: {} (https requests only)",
                display_name(&STRICT_TRANSPORT_SECURITY),
                h.to_str().unwrap_or("")
            ));
        }
        if self.nosniff {
            out.push(format!(
                "{}: nosniff",
                display_name(&X_CONTENT_TYPE_OPTIONS)
            ));
        }
        out
    }
}

impl Compiled {
    /// Header lines for `secure-headers show`.
    pub(crate) fn lines(&self, permanent: bool) -> Vec<String> {
        let mut out = Vec::new();
        out.push(if self.force_https {
            let code = if permanent { 301 } else { 302 };
            format!("https redirect: {code} for plain-http requests")
        } else {
            "https redirect: off".to_owned()
        });
        if let Some(csp) = &self.csp {
            out.push(format!("{}: {}", display_name(&csp.name), csp.display()));
        }
        for (name, value) in &self.fixed {
            out.push(format!(
                "{}: {}",
                display_name(name),
                value.to_str().unwrap_or("")
            ));
        }
        out
    }
}

/// `content-security-policy` → `Content-Security-Policy`.
fn display_name(name: &HeaderName) -> String {
    name.as_str()
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce_in(d: &[&str]) -> Vec<String> {
        d.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn nonce_goes_into_existing_or_fallback_directives() {
        let csp = assemble_csp(
            "default-src 'self'; script-src 'self' cdn.example",
            &nonce_in(&["script-src", "style-src"]),
        )
        .replace(MARK, "N");
        assert_eq!(
            csp,
            "default-src 'self'; script-src 'self' cdn.example 'nonce-N'; style-src 'self' 'nonce-N'"
        );
    }

    #[test]
    fn none_is_replaced_by_the_nonce() {
        let csp = assemble_csp("default-src 'none'", &nonce_in(&["script-src"])).replace(MARK, "N");
        assert_eq!(csp, "default-src 'none'; script-src 'nonce-N'");
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut spec = Spec::from_config(&SecureHeadersConfig::default());
        spec.frame_options = "ALLOW-FROM x".into();
        assert_eq!(spec.compile().unwrap_err().0, "frame_options");
        spec.frame_options = "deny".into();
        spec.csp = "default-src 'self'\n".into();
        assert!(
            spec.compile().is_ok(),
            "surrounding whitespace is trimmed by the split"
        );
        spec.csp = "default-src 'sé'".into();
        assert_eq!(spec.compile().unwrap_err().0, "content_security_policy");
        spec.csp = "default-src 'self'".into();
        spec.nonce_in = vec!["Script Src".into()];
        assert_eq!(spec.compile().unwrap_err().0, "csp_nonce_in");
    }

    #[test]
    fn header_names_display_in_title_case() {
        assert_eq!(
            display_name(&CONTENT_SECURITY_POLICY),
            "Content-Security-Policy"
        );
    }
}
