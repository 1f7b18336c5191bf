//! SuperOffice-style temporary keys (Person agent): a key for a domain, a target and a
//! person, until an expiry. They are ordinary credentials of kind `temporary`; the domain,
//! target and person are the subject they are bound to.

use super::personal::scope;
use super::{NewKey, Principal, SecretShape, Service};
use crate::core::credential::{Code, Credential, Kind, VerifyContext, verdict};
use crate::core::event::{aggregate, kind as ev};
use crate::core::secret::{Purpose, ct_eq};
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde_json::json;

/// TemporaryKeyDomain: travels as its name; its number is accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    Unknown = 0,
    MailingRecipient = 1,
    FormSubmitterRecipient = 2,
    ViewTicketInCustomerCenter = 3,
    LoginCustomerCenter = 4,
    PublicFaq = 5,
    ChangePasswordCustomerCenter = 6,
    RegisterCustomerCenterEmailVerification = 7,
}

impl Domain {
    pub const ALL: [Domain; 8] = [
        Domain::Unknown,
        Domain::MailingRecipient,
        Domain::FormSubmitterRecipient,
        Domain::ViewTicketInCustomerCenter,
        Domain::LoginCustomerCenter,
        Domain::PublicFaq,
        Domain::ChangePasswordCustomerCenter,
        Domain::RegisterCustomerCenterEmailVerification,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Domain::Unknown => "Unknown",
            Domain::MailingRecipient => "MailingRecipient",
            Domain::FormSubmitterRecipient => "FormSubmitterRecipient",
            Domain::ViewTicketInCustomerCenter => "ViewTicketInCustomerCenter",
            Domain::LoginCustomerCenter => "LoginCustomerCenter",
            Domain::PublicFaq => "PublicFaq",
            Domain::ChangePasswordCustomerCenter => "ChangePasswordCustomerCenter",
            Domain::RegisterCustomerCenterEmailVerification => "RegisterCustomerCenterEmailVerification",
        }
    }

    /// A name (any case) or a number.
    pub fn parse(s: &str) -> Option<Domain> {
        let s = s.trim();
        if let Ok(n) = s.parse::<i64>() {
            return Self::ALL.iter().copied().find(|d| *d as i64 == n);
        }
        Self::ALL.iter().copied().find(|d| d.name().eq_ignore_ascii_case(s))
    }
}

pub const MAX_PAYLOAD_CHARS: usize = 4000;

#[derive(Debug, Clone)]
pub struct TemporaryKeyRequest {
    pub domain: Domain,
    pub target_id: i32,
    /// 0 when the key is for no particular person.
    pub person_id: i32,
    pub expires: DateTime<Utc>,
    pub payload: Option<String>,
    /// A fingerprint of the calling application (SO-AppToken / ApplicationToken), if any.
    pub application: Option<String>,
    /// The key's name in keygate's lists (the native route); default `<Domain> #<TargetId>`.
    pub name: Option<String>,
}

/// What CheckTemporaryKey answers.
#[derive(Debug, Clone, PartialEq)]
pub struct TemporaryKeyInfo {
    pub domain: Domain,
    pub target_id: i32,
    pub person_id: i32,
    pub is_expired: bool,
    pub payload: Option<String>,
}

impl TemporaryKeyInfo {
    /// The answer for a key that is not valid here: Domain Unknown and zero ids, as SuperOffice
    /// documents it. IsExpired keeps its .NET default, false: callers check Domain.
    pub fn unknown() -> Self {
        TemporaryKeyInfo {
            domain: Domain::Unknown,
            target_id: 0,
            person_id: 0,
            is_expired: false,
            payload: None,
        }
    }
}

fn subject_of(c: &Credential) -> (Domain, i32, i32) {
    let s = &c.subject;
    let domain = s
        .get("domain")
        .and_then(|d| d.as_str())
        .and_then(Domain::parse)
        .unwrap_or(Domain::Unknown);
    let num = |k: &str| {
        s.get(k)
            .and_then(|v| v.as_i64())
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or(0)
    };
    (domain, num("target_id"), num("person_id"))
}

impl Service {
    /// A short, non-reversible fingerprint of an application token for the audit log.
    pub fn application_fingerprint(&self, token: &str) -> String {
        let d = self
            .hasher
            .digest(Purpose::Credential, &format!("application-token:{token}"));
        d.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// CreateTemporaryKey / CreateTemporaryKeyWithPayload: returns the key (URL-safe base64).
    /// An expiry in the past is accepted: the key simply checks as expired.
    pub async fn create_temporary_key(&self, by: &Principal, req: TemporaryKeyRequest) -> Result<(Credential, String)> {
        by.require(scope::ORG_WRITE)?;
        by.may_grant_lifetime("Expires", Some(req.expires))?;
        if req.target_id < 0 {
            return Err(Error::invalid("TargetId", "must not be negative"));
        }
        if req.person_id < 0 {
            return Err(Error::invalid("PersonId", "must not be negative"));
        }
        if let Some(p) = &req.payload {
            if p.chars().count() > MAX_PAYLOAD_CHARS {
                return Err(Error::invalid(
                    "Payload",
                    format!("must be at most {MAX_PAYLOAD_CHARS} characters"),
                ));
            }
        }
        super::check_time("Expires", Some(req.expires))?;
        let mut metadata = serde_json::Map::new();
        if let Some(p) = req.payload {
            metadata.insert("payload".into(), p.into());
        }
        if let Some(a) = req.application {
            metadata.insert("application".into(), a.into());
        }
        let new = NewKey {
            kind: Some(Kind::Temporary),
            name: req
                .name
                .unwrap_or_else(|| format!("{} #{}", req.domain.name(), req.target_id)),
            owner_id: by.user_id,
            expires_at: Some(req.expires),
            subject: json!({"domain": req.domain.name(), "target_id": req.target_id, "person_id": req.person_id}),
            metadata: serde_json::Value::Object(metadata),
            ..NewKey::default()
        };
        self.issue(by, new, SecretShape::UrlSafe).await
    }

    /// CheckTemporaryKey: what the key is for, or Domain Unknown and zero ids when it is not a
    /// live temporary key of the caller's organization.
    pub async fn check_temporary_key(&self, by: &Principal, key: &str) -> Result<TemporaryKeyInfo> {
        by.require(scope::ORG_READ)?;
        if key.is_empty() || key.len() > 1024 {
            return Ok(TemporaryKeyInfo::unknown());
        }
        let hash = self.hasher.digest(Purpose::Credential, key);
        let found = self
            .store
            .find_credential_by_hash(&hash)
            .await?
            .filter(|c| ct_eq(&c.hash, &hash) && c.kind == Kind::Temporary);
        let ctx = VerifyContext {
            org_id: by.org_id,
            scope: None,
            user: None,
        };
        let code = verdict(found.as_deref(), &ctx, self.now());
        let Some(c) = found.filter(|_| matches!(code, Code::Valid | Code::Expired)) else {
            return Ok(TemporaryKeyInfo::unknown());
        };
        let (domain, target_id, person_id) = subject_of(&c);
        Ok(TemporaryKeyInfo {
            domain,
            target_id,
            person_id,
            is_expired: code == Code::Expired,
            payload: c.metadata.get("payload").and_then(|p| p.as_str()).map(str::to_string),
        })
    }

    /// DeleteTemporaryKeysOfDomain: revoke the caller organization's temporary keys of that
    /// domain and person. Returns how many were revoked.
    pub async fn delete_temporary_keys_of_domain(
        &self,
        by: &Principal,
        domain: Domain,
        person_id: i32,
    ) -> Result<usize> {
        by.require(scope::ORG_WRITE)?;
        let doomed: Vec<_> = self
            .credentials_where(by.org_id, Kind::Temporary, None, |c| {
                c.revoked_at.is_none() && subject_of(c).0 == domain && subject_of(c).2 == person_id
            })
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        for id in &doomed {
            let e = self.event(
                by.org_id,
                aggregate::KEY,
                *id,
                ev::KEY_REVOKED,
                json!({"reason": "DeleteTemporaryKeysOfDomain"}),
                &by.actor,
            );
            self.store
                .revoke_credential(by.org_id, *id, self.now(), &by.actor, &e)
                .await?;
        }
        Ok(doomed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_by_name_and_number() {
        assert_eq!(
            Domain::parse("ChangePasswordCustomerCenter"),
            Some(Domain::ChangePasswordCustomerCenter)
        );
        assert_eq!(
            Domain::parse("changepasswordcustomercenter"),
            Some(Domain::ChangePasswordCustomerCenter)
        );
        assert_eq!(Domain::parse("6"), Some(Domain::ChangePasswordCustomerCenter));
        assert_eq!(Domain::parse("0"), Some(Domain::Unknown));
        assert_eq!(Domain::parse("8"), None);
        assert_eq!(Domain::parse("Nope"), None);
        for d in Domain::ALL {
            assert_eq!(Domain::parse(d.name()), Some(d));
        }
    }
}
