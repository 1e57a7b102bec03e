//! Opaque API keys: shown once, stored hashed, found by a public prefix.

use std::future::Future;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flagon::{BoxError, BoxFuture};
use subtle::ConstantTimeEq;

use crate::store::{hex, sha256_hex};

/// A freshly generated API key: give `key` to the client once; store `prefix` and `hash`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NewApiKey {
    /// The whole key (`flg_1a2b3c4d5e6f_…`), sent as `Authorization: Bearer <key>`.
    pub key: String,
    /// Its public prefix (12 hex digits), the lookup key.
    pub prefix: String,
    /// SHA-256 of the whole key, hex: what the app stores.
    pub hash: String,
}

/// What the app's lookup returns for a prefix.
#[derive(Clone, Debug)]
pub struct StoredApiKey {
    /// The user the key authenticates.
    pub user_id: String,
    /// [`NewApiKey::hash`] as stored.
    pub hash: String,
}

/// A new API key labelled `label` (`login.api_key_prefix`, default `flg`): 12 hex digits of
/// prefix and 256 random bits.
///
/// ```
/// let k = flagon_login::generate_api_key("flg");
/// assert!(k.key.starts_with(&format!("flg_{}_", k.prefix)));
/// assert_eq!(k.hash.len(), 64);
/// ```
pub fn generate_api_key(label: &str) -> NewApiKey {
    let prefix = hex(&rand::random::<[u8; 6]>());
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let key = format!("{label}_{prefix}_{secret}");
    let hash = sha256_hex(key.as_bytes());
    NewApiKey { key, prefix, hash }
}

/// The prefix of a presented key, if it has the shape of one of ours.
pub(crate) fn prefix_of<'a>(label: &str, key: &'a str) -> Option<&'a str> {
    let rest = key.strip_prefix(label)?.strip_prefix('_')?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 12 && prefix.bytes().all(|b| b.is_ascii_hexdigit()) && secret.len() == 43)
        .then_some(prefix)
}

pub(crate) fn matches(key: &str, stored: &StoredApiKey) -> bool {
    let h = sha256_hex(key.as_bytes());
    h.len() == stored.hash.len() && bool::from(h.as_bytes().ct_eq(stored.hash.as_bytes()))
}

/// The app's API-key lookup, boxed.
pub(crate) type LookupFn =
    Arc<dyn Fn(String) -> BoxFuture<Result<Option<StoredApiKey>, BoxError>> + Send + Sync>;

pub(crate) fn boxed<F, Fut, E>(f: F) -> LookupFn
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<StoredApiKey>, E>> + Send + 'static,
    E: Into<BoxError>,
{
    let f = Arc::new(f);
    Arc::new(move |prefix| {
        let fut = f(prefix);
        Box::pin(async move { fut.await.map_err(Into::into) })
    })
}
