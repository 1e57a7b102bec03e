//! Bearer JWTs (feature `jwt`): one configured algorithm, `exp`/`nbf`/`iss`/`aud` checked.

use std::time::Duration;

use flagon::serde::{Deserialize, Serialize};
use flagon::tracing;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use crate::config::LoginConfig;

/// The claims of an access token [`Auth::issue_token`](crate::Auth::issue_token) makes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(crate = "flagon::serde")]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    /// Expiry (Unix seconds).
    pub exp: u64,
    /// Not before (Unix seconds).
    pub nbf: u64,
    /// Issued at (Unix seconds; 0 when absent).
    #[serde(default)]
    pub iat: u64,
    /// Issuer (`login.jwt_issuer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience (`login.jwt_audience`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No key to sign with (an RS256/EdDSA setup without `login.jwt_private_key_pem`).
    #[error("no signing key: set login.jwt_private_key_pem to issue {0} tokens")]
    NoSigningKey(&'static str),
    /// Signing failed.
    #[error("the token could not be signed: {0}")]
    Signing(#[source] jsonwebtoken::errors::Error),
    /// The token store failed (refresh tokens).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The refresh token is unknown, expired, revoked or replayed.
    #[error("the refresh token is not valid")]
    InvalidRefresh,
}

impl From<TokenError> for flagon::HttpError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::InvalidRefresh => {
                flagon::HttpError::with_cause(flagon::http::StatusCode::UNAUTHORIZED, e)
            }
            e => flagon::HttpError::internal(e),
        }
    }
}

pub(crate) struct Jwt {
    alg: Algorithm,
    name: &'static str,
    enc: Option<EncodingKey>,
    dec: DecodingKey,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Jwt {
    /// From `[login]`; `derived` is `derive_key("login.jwt")`, the HS256 key when none is set.
    pub fn from_config(cfg: &LoginConfig, derived: &[u8]) -> Result<Jwt, (&'static str, String)> {
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        }
        let bad = |key: &'static str| move |e: jsonwebtoken::errors::Error| (key, e.to_string());
        let (alg, name, enc, dec) = match cfg.jwt_algorithm.as_str() {
            "HS256" => {
                let secret = match &cfg.jwt_secret {
                    Some(s) => s.expose().as_bytes().to_vec(),
                    None => derived.to_vec(),
                };
                if secret.len() < 32 {
                    return Err(("login.jwt_secret", "must be at least 32 bytes".into()));
                }
                (
                    Algorithm::HS256,
                    "HS256",
                    Some(EncodingKey::from_secret(&secret).map_err(bad("login.jwt_secret"))?),
                    DecodingKey::from_secret(&secret).map_err(bad("login.jwt_secret"))?,
                )
            }
            alg => {
                let pem = cfg.jwt_public_key_pem.as_deref().unwrap_or("").as_bytes();
                let private = cfg
                    .jwt_private_key_pem
                    .as_ref()
                    .map(|s| s.expose().as_bytes());
                if alg == "RS256" {
                    let enc = private
                        .map(EncodingKey::from_rsa_pem)
                        .transpose()
                        .map_err(bad("login.jwt_private_key_pem"))?;
                    let dec =
                        DecodingKey::from_rsa_pem(pem).map_err(bad("login.jwt_public_key_pem"))?;
                    (Algorithm::RS256, "RS256", enc, dec)
                } else {
                    let enc = private
                        .map(EncodingKey::from_ed_pem)
                        .transpose()
                        .map_err(bad("login.jwt_private_key_pem"))?;
                    let dec =
                        DecodingKey::from_ed_pem(pem).map_err(bad("login.jwt_public_key_pem"))?;
                    (Algorithm::EdDSA, "EdDSA", enc, dec)
                }
            }
        };
        // Exactly one algorithm: `none` and another family's (HS256 signed with an RSA
        // public key) are refused by the header check.
        let mut validation = Validation::new(alg);
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.leeway = cfg.jwt_leeway.as_secs();
        validation.set_required_spec_claims(&["exp", "nbf", "sub"]);
        match &cfg.jwt_issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &cfg.jwt_audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Ok(Jwt {
            alg,
            name,
            enc,
            dec,
            validation,
            issuer: cfg.jwt_issuer.clone(),
            audience: cfg.jwt_audience.clone(),
        })
    }

    pub fn issue(&self, sub: &str, ttl: Duration, now: u64) -> Result<String, TokenError> {
        let Some(enc) = &self.enc else {
            return Err(TokenError::NoSigningKey(self.name));
        };
        let claims = Claims {
            sub: sub.to_owned(),
            exp: now.saturating_add(ttl.as_secs()),
            nbf: now,
            iat: now,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        jsonwebtoken::encode(&Header::new(self.alg), &claims, enc).map_err(TokenError::Signing)
    }

    /// The subject of a valid token.
    pub fn verify(&self, token: &str) -> Option<String> {
        match jsonwebtoken::decode::<Claims>(token, &self.dec, &self.validation) {
            Ok(data) => Some(data.claims.sub),
            Err(e) => {
                tracing::debug!(target: "flagon_login", error = %e, "a bearer JWT was refused");
                None
            }
        }
    }
}
