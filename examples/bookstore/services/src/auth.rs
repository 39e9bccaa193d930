//! Signed session tokens: `base64url(claims JSON) "." base64url(HMAC-SHA256)`.
//! Every service holds the shared key (TOKEN_SECRET) and checks tokens itself,
//! so no request needs a round trip to the users service.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::ApiError;

#[derive(Clone)]
pub struct TokenKey(Arc<[u8]>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The username.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenError::Malformed => "malformed token",
            TokenError::BadSignature => "bad token signature",
            TokenError::Expired => "token expired",
        })
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenKey {
    pub fn new(secret: &[u8]) -> Self {
        TokenKey(Arc::from(secret))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialise"));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// Checks the signature (constant time) and the expiry against `now`.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let (payload, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let sig = B64.decode(sig).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let json = B64.decode(payload).map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// The caller, from `Authorization: Bearer <token>`.
pub struct AuthUser(pub String);

impl AuthUser {
    /// 403 unless the caller is `user`: a user only touches their own cart and orders.
    pub fn must_be(&self, user: &str) -> Result<(), ApiError> {
        if self.0 == user {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "token of {:?} cannot access {user:?}",
                self.0
            )))
        }
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    TokenKey: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let key = TokenKey::from_ref(state);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| ApiError::unauthorized("Authorization must be a Bearer token"))?;
        let claims = key
            .verify(token.trim(), now_secs())
            .map_err(|e| ApiError::unauthorized(e.to_string()))?;
        Ok(AuthUser(claims.sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let key = TokenKey::new(b"0123456789abcdef");
        let claims = Claims {
            sub: "alice".into(),
            exp: 1000,
        };
        let t = key.sign(&claims);
        assert_eq!(key.verify(&t, 999), Ok(claims));
        assert_eq!(key.verify(&t, 1000), Err(TokenError::Expired));
    }

    #[test]
    fn rejects_tampering_and_other_keys() {
        let key = TokenKey::new(b"0123456789abcdef");
        let t = key.sign(&Claims {
            sub: "alice".into(),
            exp: 1000,
        });
        let other = TokenKey::new(b"fedcba9876543210");
        assert_eq!(other.verify(&t, 1), Err(TokenError::BadSignature));
        let forged_payload = B64.encode(br#"{"sub":"mallory","exp":1000}"#);
        let sig = t.split_once('.').unwrap().1;
        assert_eq!(
            key.verify(&format!("{forged_payload}.{sig}"), 1),
            Err(TokenError::BadSignature)
        );
        assert_eq!(key.verify("nodot", 1), Err(TokenError::Malformed));
        assert_eq!(key.verify("a.!!!", 1), Err(TokenError::Malformed));
        assert_eq!(key.verify("", 1), Err(TokenError::Malformed));
    }
}
