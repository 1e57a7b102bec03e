//! The `[secure_headers]` config section and per-route overrides.

use std::collections::BTreeMap;

use flagon::serde::{Deserialize, Serialize};

/// The default Content-Security-Policy: same-origin everything, no plugins, no `<base>`
/// hijacking, framing by the same origin only. `script-src` and `style-src` get the
/// per-request nonce (see [`SecureHeadersConfig::csp_nonce_in`]).
pub const DEFAULT_CSP: &str =
    "default-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'";

/// `[secure_headers]` in `flagon.toml`. Every key is optional; see the crate docs for the
/// table of defaults.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(crate = "flagon::serde", default, deny_unknown_fields)]
pub struct SecureHeadersConfig {
    /// Redirect plain-http requests to https (302, or 301 with `force_https_permanent`).
    pub force_https: bool,
    /// Use 301 instead of 302 for the https redirect.
    pub force_https_permanent: bool,
    /// The host (and optional port) https redirects go to, e.g. `example.com`. Unset, the
    /// request's `Host` is used (its port dropped); set it when redirects are permanent, so
    /// that a forged `Host` cannot be cached as a redirect elsewhere.
    pub https_host: Option<String>,
    /// The Content-Security-Policy; `""` sends none.
    pub content_security_policy: String,
    /// Send the policy as `Content-Security-Policy-Report-Only` instead.
    pub content_security_policy_report_only: bool,
    /// Directives that get the per-request `'nonce-…'` source; `[]` turns nonces off.
    pub csp_nonce_in: Vec<String>,
    /// `X-Frame-Options`: `DENY`, `SAMEORIGIN` or `""` (none).
    pub frame_options: String,
    /// Send `Strict-Transport-Security` on https requests.
    pub strict_transport_security: bool,
    /// HSTS `max-age` in seconds.
    pub hsts_max_age: u64,
    /// HSTS `includeSubDomains`.
    pub hsts_include_subdomains: bool,
    /// HSTS `preload`.
    pub hsts_preload: bool,
    /// `Referrer-Policy`; `""` sends none.
    pub referrer_policy: String,
    /// `Permissions-Policy`; `""` sends none.
    pub permissions_policy: String,
    /// Send `X-Content-Type-Options: nosniff`.
    pub content_type_nosniff: bool,
    /// Overrides by endpoint name (qualified: `admin.index`).
    pub endpoints: BTreeMap<String, PolicyOverride>,
    /// Overrides by blueprint name (dotted for nested ones: `admin.users`); they apply to
    /// every route in the blueprint and its children.
    pub blueprints: BTreeMap<String, PolicyOverride>,
}

impl Default for SecureHeadersConfig {
    fn default() -> Self {
        SecureHeadersConfig {
            force_https: false,
            force_https_permanent: false,
            https_host: None,
            content_security_policy: DEFAULT_CSP.to_owned(),
            content_security_policy_report_only: false,
            csp_nonce_in: vec!["script-src".into(), "style-src".into()],
            frame_options: "SAMEORIGIN".into(),
            strict_transport_security: true,
            hsts_max_age: 31_536_000,
            hsts_include_subdomains: true,
            hsts_preload: false,
            referrer_policy: "strict-origin-when-cross-origin".into(),
            permissions_policy: "browsing-topics=()".into(),
            content_type_nosniff: true,
            endpoints: BTreeMap::new(),
            blueprints: BTreeMap::new(),
        }
    }
}

/// What a route or blueprint changes from the app-wide policy; unset fields inherit.
///
/// The same shape is read from `[secure_headers.endpoints."name"]` and
/// `[secure_headers.blueprints.name]`, and accepted by
/// [`SecureHeaders::endpoint`](crate::SecureHeaders::endpoint) and
/// [`SecureHeaders::blueprint`](crate::SecureHeaders::blueprint).
///
/// ```
/// use flagon_secure_headers::PolicyOverride;
/// let embeddable = PolicyOverride {
///     frame_options: Some(String::new()),
///     content_security_policy: Some("default-src 'self'; frame-ancestors *".into()),
///     ..PolicyOverride::default()
/// };
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(crate = "flagon::serde", default, deny_unknown_fields)]
pub struct PolicyOverride {
    /// Redirect plain-http requests to https.
    pub force_https: Option<bool>,
    /// The Content-Security-Policy (`""`: none).
    pub content_security_policy: Option<String>,
    /// Report-only CSP.
    pub content_security_policy_report_only: Option<bool>,
    /// Directives that get the nonce.
    pub csp_nonce_in: Option<Vec<String>>,
    /// `X-Frame-Options` (`""`: none).
    pub frame_options: Option<String>,
    /// `Referrer-Policy` (`""`: none).
    pub referrer_policy: Option<String>,
    /// `Permissions-Policy` (`""`: none).
    pub permissions_policy: Option<String>,
}

impl PolicyOverride {
    /// Layers `other` on top of `self` (`other`'s set fields win).
    pub(crate) fn merge(&mut self, other: &PolicyOverride) {
        macro_rules! take {
            ($($f:ident),*) => {$(
                if other.$f.is_some() {
                    self.$f = other.$f.clone();
                }
            )*};
        }
        take!(
            force_https,
            content_security_policy,
            content_security_policy_report_only,
            csp_nonce_in,
            frame_options,
            referrer_policy,
            permissions_policy
        );
    }
}
