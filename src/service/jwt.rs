//! Bearer JWT verification: HS256 with a shared secret, and RS256/ES256/EdDSA with a PEM
//! public key. `exp` is required and checked against the injected clock; `iss` and `aud`
//! are checked when configured; `sub` is the user's UUID.

use crate::config::Settings;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Clone)]
pub struct JwtVerifier {
    hs: Option<DecodingKey>,
    public: Option<(DecodingKey, Vec<Algorithm>)>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("hs256", &self.hs.is_some())
            .field("public_key", &self.public.as_ref().map(|(_, a)| a.clone()))
            .finish()
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    nbf: Option<i64>,
}

impl JwtVerifier {
    /// `None` when no JWT key is configured (Bearer is then refused).
    pub fn from_settings(s: &Settings) -> Result<Option<Self>, String> {
        let hs = match s.jwt_secret.as_deref() {
            Some(secret) if secret.len() < 32 => {
                return Err("KEYGATE_JWT_SECRET must be at least 32 bytes".into());
            }
            Some(secret) => Some(DecodingKey::from_secret(secret.as_bytes())),
            None => None,
        };
        let public = match &s.jwt_public_key_file {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read jwt_public_key_file {}: {e}", path.display()))?;
                Some(parse_public_key(&pem)?)
            }
            None => None,
        };
        if hs.is_none() && public.is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            hs,
            public,
            issuer: s.jwt_issuer.clone(),
            audience: s.jwt_audience.clone(),
        }))
    }

    /// The user a valid token names, or `None` for any invalid token.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Option<Uuid> {
        let header = decode_header(token).ok()?;
        let (key, algs) = if header.alg == Algorithm::HS256 {
            (self.hs.as_ref()?, vec![Algorithm::HS256])
        } else {
            let (k, algs) = self.public.as_ref()?;
            if !algs.contains(&header.alg) {
                return None;
            }
            (k, algs.clone())
        };
        let mut v = Validation::new(header.alg);
        v.algorithms = algs;
        // exp/nbf are checked below against the injected clock.
        v.validate_exp = false;
        v.validate_nbf = false;
        v.leeway = 0;
        let mut required = vec!["exp", "sub"];
        if self.issuer.is_some() {
            required.push("iss");
        }
        if self.audience.is_some() {
            required.push("aud");
        }
        v.set_required_spec_claims(&required);
        match &self.issuer {
            Some(iss) => v.set_issuer(&[iss]),
            None => v.iss = None,
        }
        match &self.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        let data = decode::<Claims>(token, key, &v).ok()?;
        let now = now.timestamp();
        if data.claims.exp <= now || data.claims.nbf.is_some_and(|nbf| nbf > now) {
            return None;
        }
        Uuid::parse_str(&data.claims.sub).ok()
    }
}

fn parse_public_key(pem: &[u8]) -> Result<(DecodingKey, Vec<Algorithm>), String> {
    if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        return Ok((k, vec![Algorithm::RS256, Algorithm::RS384, Algorithm::RS512]));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        return Ok((k, vec![Algorithm::ES256, Algorithm::ES384]));
    }
    if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        return Ok((k, vec![Algorithm::EdDSA]));
    }
    Err("jwt_public_key_file is not an RSA, EC or Ed25519 public key in PEM".into())
}
