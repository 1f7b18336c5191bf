//! Personal access keys (Tedee style): scoped, owned by one user, valid at most 5 years,
//! shown once, presented as `Authorization: PersonalKey <key>`.

use super::{AuthMethod, NewKey, Principal, SecretShape, Service, validate_name};
use crate::core::credential::{Code, Credential, Kind, VerifyContext, verdict};
use crate::core::event::{actor, aggregate, kind as ev};
use crate::core::secret::{Purpose, ct_eq};
use crate::error::{Error, Result};
use chrono::{DateTime, Months, Utc};
use serde_json::json;
use uuid::Uuid;

/// The scopes keygate's own surfaces check, named as in the Tedee catalogue.
pub mod scope {
    /// Your own account: `/v1/me`, your personal access keys (read).
    pub const ACCOUNT_READ: &str = "Account.Read";
    /// Your own account: create, change and delete personal access keys.
    pub const ACCOUNT_WRITE: &str = "Account.ReadWrite";
    /// The organization: list and read keys, verify keys, users, API keys, events.
    pub const ORG_READ: &str = "Organization.Read";
    /// The organization: issue, use and revoke keys; create users and API keys.
    pub const ORG_WRITE: &str = "Organization.ReadWrite";
}

/// Every scope a personal access key may carry (Tedee's catalogue, less the OAuth-only
/// `user_impersonation` and `offline_access`).
pub const CATALOGUE: &[&str] = &[
    "Account.Read",
    "Account.ReadWrite",
    "Bridge.Operate",
    "Device.Read",
    "Device.ReadWrite",
    "DeviceActivity.Read",
    "DeviceCertificate.Operate",
    "DeviceShare.Read",
    "DeviceShare.ReadWrite",
    "Lock.Operate",
    "Mobile.Read",
    "Mobile.ReadWrite",
    "Organization.Read",
    "Organization.ReadWrite",
    "AccessLink.Read",
    "AccessLink.ReadWrite",
];

/// Scopes that exist but only for OAuth clients.
const OAUTH_ONLY: &[&str] = &["user_impersonation", "offline_access"];

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_LIFETIME_MONTHS: u32 = 60;

/// Does the granted scope cover the needed one? Equal, or `X.ReadWrite` for `X.Read`, as in
/// Tedee's catalogue; no other scope implies another (`Organization.Read` does not cover
/// `Account.Read`).
pub fn scope_implies(granted: &str, needed: &str) -> bool {
    if granted == needed {
        return true;
    }
    match (granted.strip_suffix(".ReadWrite"), needed.strip_suffix(".Read")) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Check and normalise requested scopes: known (case-insensitively), no duplicates, canonical spelling.
pub fn normalise_scopes(requested: &[String]) -> Result<Vec<String>> {
    if requested.is_empty() {
        return Err(Error::invalid("scopes", "at least one scope is required"));
    }
    let mut out: Vec<String> = vec![];
    for (i, s) in requested.iter().enumerate() {
        let Some(canon) = CATALOGUE.iter().find(|c| c.eq_ignore_ascii_case(s)) else {
            let why = if OAUTH_ONLY.iter().any(|o| o.eq_ignore_ascii_case(s)) {
                format!("{s:?} is only available to OAuth clients")
            } else {
                format!("unknown scope {s:?}")
            };
            return Err(Error::invalid(format!("scopes[{i}]"), why));
        };
        if !out.iter().any(|o| o == canon) {
            out.push((*canon).to_string());
        }
    }
    Ok(out)
}

/// What a personal key request carries after the surface parsed it.
#[derive(Debug, Clone)]
pub struct PersonalKeyRequest {
    pub name: String,
    pub valid_to: DateTime<Utc>,
    pub scopes: Vec<String>,
}

impl Service {
    fn check_personal(&self, by: &Principal, req: &PersonalKeyRequest) -> Result<Vec<String>> {
        validate_name("name", &req.name)?;
        if req.name.chars().count() > MAX_NAME_CHARS {
            return Err(Error::invalid(
                "name",
                format!("must be at most {MAX_NAME_CHARS} characters"),
            ));
        }
        let now = self.now();
        if req.valid_to <= now {
            return Err(Error::invalid("validTo", "must be in the future"));
        }
        let limit = now
            .checked_add_months(Months::new(MAX_LIFETIME_MONTHS))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if req.valid_to > limit {
            return Err(Error::invalid("validTo", "must be at most 5 years ahead"));
        }
        let scopes = normalise_scopes(&req.scopes)?;
        // A scoped caller cannot hand out more than it holds, nor for longer.
        if by.scopes.is_some() {
            for s in &scopes {
                by.require(s)?;
            }
        }
        by.may_grant_lifetime("validTo", Some(req.valid_to))?;
        Ok(scopes)
    }

    /// Personal keys belong to the person who makes them: never to an API key, and never made
    /// by an administrator for somebody else.
    fn personal_owner(by: &Principal) -> Result<Uuid> {
        by.user_id
            .ok_or_else(|| Error::Forbidden("personal access keys belong to users, not API keys".into()))
    }

    pub async fn create_personal_key(&self, by: &Principal, req: PersonalKeyRequest) -> Result<(Credential, String)> {
        by.require(scope::ACCOUNT_WRITE)?;
        let owner = Self::personal_owner(by)?;
        let scopes = self.check_personal(by, &req)?;
        let new = NewKey {
            kind: Some(Kind::Personal),
            name: req.name,
            owner_id: Some(owner),
            scopes,
            expires_at: Some(req.valid_to),
            ..NewKey::default()
        };
        self.issue(by, new, SecretShape::Personal).await
    }

    /// The caller's own personal keys that are not deleted, oldest first.
    pub async fn list_personal_keys(&self, by: &Principal) -> Result<Vec<Credential>> {
        by.require(scope::ACCOUNT_READ)?;
        let owner = Self::personal_owner(by)?;
        self.credentials_where(by.org_id, Kind::Personal, Some(owner), |c| c.revoked_at.is_none())
            .await
    }

    /// One of the caller's own live personal keys; anything else is "not found".
    async fn own_personal_key(&self, by: &Principal, id: Uuid) -> Result<Credential> {
        let owner = Self::personal_owner(by)?;
        self.store
            .get_credential(by.org_id, id)
            .await?
            .filter(|c| c.kind == Kind::Personal && c.owner_id == Some(owner) && c.revoked_at.is_none())
            .ok_or(Error::NotFound("personal access key"))
    }

    pub async fn update_personal_key(&self, by: &Principal, id: Uuid, req: PersonalKeyRequest) -> Result<Credential> {
        by.require(scope::ACCOUNT_WRITE)?;
        let mut c = self.own_personal_key(by, id).await?;
        let scopes = self.check_personal(by, &req)?;
        let changes = json!({"name": req.name, "expires_at": req.valid_to, "scopes": scopes});
        c.name = req.name;
        c.expires_at = Some(req.valid_to);
        c.scopes = scopes;
        c.updated_at = self.now();
        c.updated_by = by.actor.clone();
        let e = self.event(
            by.org_id,
            aggregate::KEY,
            id,
            ev::KEY_UPDATED,
            json!({"changes": changes}),
            &by.actor,
        );
        if self.store.update_credential(&c, &e).await?.is_none() {
            return Err(Error::NotFound("personal access key"));
        }
        Ok(c)
    }

    pub async fn delete_personal_key(&self, by: &Principal, id: Uuid) -> Result<()> {
        by.require(scope::ACCOUNT_WRITE)?;
        self.own_personal_key(by, id).await?;
        let e = self.event(by.org_id, aggregate::KEY, id, ev::KEY_REVOKED, json!({}), &by.actor);
        match self
            .store
            .revoke_credential(by.org_id, id, self.now(), &by.actor, &e)
            .await?
        {
            Some(_) => Ok(()),
            None => Err(Error::NotFound("personal access key")),
        }
    }

    /// `Authorization: PersonalKey <key>`: the owner, limited to the key's scopes.
    pub async fn auth_personal_key(&self, secret: &str) -> Result<Principal> {
        if secret.is_empty() || secret.len() > 256 {
            return Err(Error::Unauthenticated);
        }
        let hash = self.hasher.digest(Purpose::Credential, secret);
        let c = self
            .store
            .find_credential_by_hash(&hash)
            .await?
            .filter(|c| ct_eq(&c.hash, &hash) && c.kind == Kind::Personal)
            .ok_or(Error::Unauthenticated)?;
        let ctx = VerifyContext {
            org_id: c.org_id,
            scope: None,
            user: None,
        };
        if verdict(Some(&c), &ctx, self.now()) != Code::Valid {
            return Err(Error::Unauthenticated);
        }
        let owner = c.owner_id.ok_or(Error::Unauthenticated)?;
        // Only a key its owner made acts as the owner (keys minted for somebody else through the
        // native route before it followed this rule are revoked at start-up, see repair.rs).
        if c.created_by != actor("user", owner) {
            return Err(Error::Unauthenticated);
        }
        let user = self
            .store
            .get_user(c.org_id, owner)
            .await?
            .ok_or(Error::Unauthenticated)?;
        let mut p = self.principal_for_user(&user, AuthMethod::PersonalKey).await?;
        p.scopes = Some(c.scopes.clone());
        p.valid_until = c.expires_at;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_implies_read_only_for_the_same_area() {
        assert!(scope_implies("Account.ReadWrite", "Account.Read"));
        assert!(scope_implies("Account.Read", "Account.Read"));
        assert!(!scope_implies("Account.Read", "Account.ReadWrite"));
        assert!(!scope_implies("Device.ReadWrite", "Account.Read"));
        assert!(!scope_implies("DeviceShare.ReadWrite", "Device.Read"));
        assert!(scope_implies("Organization.ReadWrite", "Organization.Read"));
        // Tedee's scopes: the organization's do not cover one's own account.
        assert!(!scope_implies("Organization.ReadWrite", "Account.Read"));
        assert!(!scope_implies("Organization.Read", "Account.Read"));
        assert!(!scope_implies("Organization.ReadWrite", "Account.ReadWrite"));
        assert!(!scope_implies("Account.ReadWrite", "Organization.Read"));
        // Every ReadWrite of the catalogue implies its own Read and nothing else.
        for g in CATALOGUE {
            for n in CATALOGUE {
                let expected = g == n
                    || g.strip_suffix(".ReadWrite")
                        .is_some_and(|a| n.strip_suffix(".Read") == Some(a));
                assert_eq!(scope_implies(g, n), expected, "{g} -> {n}");
            }
        }
    }

    #[test]
    fn scopes_are_checked_and_normalised() {
        let s = |v: &[&str]| normalise_scopes(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&["device.read", "Device.Read"]).unwrap(), vec!["Device.Read"]);
        assert!(matches!(s(&[]), Err(Error::Invalid { field, .. }) if field == "scopes"));
        assert!(matches!(s(&["Account.Read", "Nope"]), Err(Error::Invalid { field, .. }) if field == "scopes[1]"));
        assert!(s(&["offline_access"]).is_err());
        // The seed's sample scopes are in the catalogue.
        assert!(s(&["Device.Read", "Organization.ReadWrite"]).is_ok());
    }
}
