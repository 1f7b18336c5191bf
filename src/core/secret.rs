//! Secret generation, encodings, keyed hashing and constant-time comparison.
//!
//! Every secret keygate issues is at least 256 bits from the OS CSPRNG. Secrets are
//! stored only as HMAC-SHA256 under the server secret, so a stolen database does not
//! yield usable keys, and digests are compared in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Number of random bytes in every secret (256 bits).
pub const SECRET_BYTES: usize = 32;

/// Fill a fresh buffer from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> Zeroizing<[u8; N]> {
    let mut buf = Zeroizing::new([0u8; N]);
    OsRng.fill_bytes(buf.as_mut());
    buf
}

/// URL-safe base64 without padding of 256 random bits (43 characters).
/// This is the SuperOffice temporary key shape: "ready to be used in a URL".
pub fn new_url_secret() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_BYTES>().as_ref())
}

/// Standard base64 (with padding) of 256 random bits; used for `7T:` tickets.
pub fn new_std_padded_secret() -> String {
    STANDARD.encode(random_bytes::<SECRET_BYTES>().as_ref())
}

/// Random lowercase letters (rejection sampled, so every letter is equally likely).
pub fn random_lowercase(len: usize) -> String {
    random_from_alphabet(b"abcdefghijklmnopqrstuvwxyz", len)
}

/// Random characters from an alphabet of at most 256 symbols, without modulo bias.
pub fn random_from_alphabet(alphabet: &[u8], len: usize) -> String {
    debug_assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    let n = alphabet.len();
    let limit = 256 - (256 % n); // reject bytes >= limit to avoid bias
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let chunk = random_bytes::<64>();
        for &b in chunk.iter() {
            if (b as usize) < limit {
                out.push(alphabet[(b as usize) % n] as char);
                if out.len() == len {
                    break;
                }
            }
        }
    }
    out
}

/// A key in the `prefix.secret` shape: the prefix is public (shown in lists, stored in
/// clear for display), the secret is 256 random bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixedKey {
    pub prefix: String,
    pub full: String,
}

/// The Tedee personal access key shape: 6 lowercase letters, a dot, 32 random bytes in
/// standard base64 without padding, e.g. `smnxaz.IWA6u00VLQmA8tlfioDXcH+bSiI6u8LgTG9cv3Evh/E`.
pub fn new_personal_key() -> PrefixedKey {
    let prefix = random_lowercase(6);
    let secret = STANDARD_NO_PAD.encode(random_bytes::<SECRET_BYTES>().as_ref());
    PrefixedKey {
        full: format!("{prefix}.{secret}"),
        prefix,
    }
}

/// The native keygate key shape: `kg_` + 8 lowercase alphanumerics as the public prefix,
/// a dot, and 32 random bytes in URL-safe base64 without padding. The fixed `kg_` lead
/// lets secret scanners recognise leaked keys.
pub fn new_native_key(lead: &str) -> PrefixedKey {
    let prefix = format!(
        "{lead}{}",
        random_from_alphabet(b"abcdefghijklmnopqrstuvwxyz0123456789", 8)
    );
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_BYTES>().as_ref());
    PrefixedKey {
        full: format!("{prefix}.{secret}"),
        prefix,
    }
}

/// The public part of a `prefix.secret` key, if it has that shape.
pub fn prefix_of(key: &str) -> Option<&str> {
    let (prefix, rest) = key.split_once('.')?;
    (!prefix.is_empty() && !rest.is_empty() && prefix.len() <= 32).then_some(prefix)
}

/// A 32-byte digest of a secret.
pub type Digest = [u8; 32];

/// HMAC-SHA256 under the server secret, keyed once and cloned per use.
#[derive(Clone)]
pub struct SecretHasher {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHasher(..)")
    }
}

/// Domain separation labels, so a ticket can never be presented as a key and so on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Credential,
    ApiKey,
    Ticket,
    Session,
    Xsrf,
    Pin,
    /// Keys of the login limiter, single flight and verified-password cache (never stored).
    Login,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Credential => b"keygate/credential\0",
            Purpose::ApiKey => b"keygate/api-key\0",
            Purpose::Ticket => b"keygate/ticket\0",
            Purpose::Session => b"keygate/session\0",
            Purpose::Xsrf => b"keygate/xsrf\0",
            Purpose::Pin => b"keygate/pin\0",
            Purpose::Login => b"keygate/login\0",
        }
    }
}

impl SecretHasher {
    /// Key the hasher. The server secret must be at least 32 bytes.
    pub fn new(server_secret: &[u8]) -> Result<Self, String> {
        if server_secret.len() < 32 {
            return Err("the server secret must be at least 32 bytes".into());
        }
        let mac =
            <Hmac<Sha256> as Mac>::new_from_slice(server_secret).map_err(|_| "invalid server secret".to_string())?;
        Ok(Self { mac })
    }

    /// Keyed digest of a presented secret for one purpose.
    pub fn digest(&self, purpose: Purpose, secret: &str) -> Digest {
        let mut mac = self.mac.clone();
        mac.update(purpose.label());
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hasher() -> SecretHasher {
        SecretHasher::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn url_secret_is_43_urlsafe_chars_and_256_bits() {
        let s = new_url_secret();
        assert_eq!(s.len(), 43);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(URL_SAFE_NO_PAD.decode(&s).unwrap().len(), 32);
    }

    #[test]
    fn personal_key_matches_the_tedee_sample_shape() {
        // The seed's sample: smnxaz.IWA6u00VLQmA8tlfioDXcH+bSiI6u8LgTG9cv3Evh/E
        let sample = "smnxaz.IWA6u00VLQmA8tlfioDXcH+bSiI6u8LgTG9cv3Evh/E";
        let k = new_personal_key();
        assert_eq!(k.full.len(), sample.len());
        let (p, s) = k.full.split_once('.').unwrap();
        assert_eq!(p, k.prefix);
        assert_eq!(p.len(), 6);
        assert!(p.chars().all(|c| c.is_ascii_lowercase()));
        assert_eq!(STANDARD_NO_PAD.decode(s).unwrap().len(), 32);
        assert_eq!(
            STANDARD_NO_PAD.decode(sample.split_once('.').unwrap().1).unwrap().len(),
            32
        );
    }

    #[test]
    fn native_key_has_recognisable_prefix() {
        let k = new_native_key("kg_");
        assert!(k.prefix.starts_with("kg_"));
        assert_eq!(k.prefix.len(), 11);
        assert_eq!(prefix_of(&k.full), Some(k.prefix.as_str()));
    }

    #[test]
    fn secrets_do_not_repeat() {
        let a: std::collections::HashSet<String> = (0..1000).map(|_| new_url_secret()).collect();
        assert_eq!(a.len(), 1000);
    }

    #[test]
    fn short_server_secret_is_refused() {
        assert!(SecretHasher::new(&[1u8; 31]).is_err());
    }

    #[test]
    fn purposes_are_separated() {
        let h = hasher();
        assert_ne!(h.digest(Purpose::Credential, "x"), h.digest(Purpose::Ticket, "x"));
    }

    #[test]
    fn different_server_secrets_give_different_digests() {
        let a = SecretHasher::new(&[1u8; 32]).unwrap();
        let b = SecretHasher::new(&[2u8; 32]).unwrap();
        assert_ne!(a.digest(Purpose::Credential, "k"), b.digest(Purpose::Credential, "k"));
    }

    proptest! {
        #[test]
        fn digest_is_deterministic_and_ct_eq_agrees_with_eq(a in ".{0,64}", b in ".{0,64}") {
            let h = hasher();
            let da = h.digest(Purpose::Credential, &a);
            let db = h.digest(Purpose::Credential, &b);
            prop_assert_eq!(da, h.digest(Purpose::Credential, &a));
            prop_assert_eq!(ct_eq(&da, &db), a == b);
            prop_assert_eq!(ct_eq(a.as_bytes(), b.as_bytes()), a == b);
        }

        #[test]
        fn alphabet_sampling_stays_in_alphabet(len in 0usize..100) {
            let s = random_lowercase(len);
            prop_assert_eq!(s.len(), len);
            prop_assert!(s.chars().all(|c| c.is_ascii_lowercase()));
        }
    }
}
