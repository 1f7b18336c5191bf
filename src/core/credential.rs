//! The one credential model shared by every kind of key, and the one verify policy.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a credential is for. The kind is data: every kind shares one model and one verify path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A key issued through the native API.
    Api,
    /// A SuperOffice-style temporary key (Person agent).
    Temporary,
    /// A Tedee-style personal access key.
    Personal,
    /// A SmartphoneKey-style share key for a lock.
    Share,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Api => "api",
            Kind::Temporary => "temporary",
            Kind::Personal => "personal",
            Kind::Share => "share",
        }
    }

    /// Does a key of this kind verify by a secret? Share keys have none: a guest holds a link,
    /// and a collective key's PIN is checked only at its lock's entrance panel.
    pub fn has_secret(self) -> bool {
        matches!(self, Kind::Api | Kind::Temporary | Kind::Personal)
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "api" => Kind::Api,
            "temporary" => Kind::Temporary,
            "personal" => Kind::Personal,
            "share" => Kind::Share,
            _ => return None,
        })
    }
}

/// A stored credential. The secret itself is never here: only its keyed digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Credential {
    pub id: Uuid,
    pub org_id: Uuid,
    pub kind: Kind,
    pub owner_id: Option<Uuid>,
    pub name: String,
    /// The public part of the key, for display; never enough to use it.
    pub prefix: String,
    pub hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i64>,
    pub used_count: i64,
    /// When non-empty, only these users may use the key.
    pub allowed_users: Vec<Uuid>,
    /// What the key is bound to (domain/target/person, lock, ...), as JSON.
    pub subject: serde_json::Value,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
}

#[cfg(test)]
impl Credential {
    /// A live key for unit tests: of `kind` in organization `org_id`, made at `at` by `t`, with a
    /// new id, a zero digest, no scopes, limits, subject or owner and `{}` metadata. A test sets
    /// what it is about with struct update syntax (`Credential { max_uses: Some(1), ..fixture }`);
    /// tests that store several keys give each its own `hash` (digests are unique).
    pub(crate) fn fixture(org_id: Uuid, kind: Kind, at: DateTime<Utc>) -> Credential {
        Credential {
            id: Uuid::now_v7(),
            org_id,
            kind,
            owner_id: None,
            name: "k".into(),
            prefix: "kg_abc".into(),
            hash: vec![0; 32],
            scopes: vec![],
            not_before: None,
            expires_at: None,
            max_uses: None,
            used_count: 0,
            allowed_users: vec![],
            subject: serde_json::Value::Null,
            metadata: serde_json::json!({}),
            created_at: at,
            created_by: "t".into(),
            updated_at: at,
            updated_by: "t".into(),
            revoked_at: None,
            revoked_by: None,
        }
    }
}

/// The reason code of a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    Valid,
    NotFound,
    NotYetValid,
    Expired,
    Revoked,
    UsageExceeded,
    Forbidden,
    InsufficientScope,
    /// A share key used outside its weekly schedule (never from [`verdict`], which knows no
    /// schedules).
    OutsideSchedule,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Valid => "VALID",
            Code::NotFound => "NOT_FOUND",
            Code::NotYetValid => "NOT_YET_VALID",
            Code::Expired => "EXPIRED",
            Code::Revoked => "REVOKED",
            Code::UsageExceeded => "USAGE_EXCEEDED",
            Code::Forbidden => "FORBIDDEN",
            Code::InsufficientScope => "INSUFFICIENT_SCOPE",
            Code::OutsideSchedule => "OUTSIDE_SCHEDULE",
        }
    }

    pub fn is_valid(self) -> bool {
        self == Code::Valid
    }
}

/// Who is presenting the key, and what for.
#[derive(Debug, Clone, Default)]
pub struct VerifyContext {
    /// The organization of the caller. A key of another organization does not exist for it.
    pub org_id: Uuid,
    /// The scope the caller needs, if any.
    pub scope: Option<String>,
    /// The user presenting the key, for whitelisted keys.
    pub user: Option<Uuid>,
}

/// Does `granted` cover `wanted`? `*` covers everything and `a.*` covers `a.b`.
pub fn scope_covers(granted: &str, wanted: &str) -> bool {
    if granted == wanted || granted == "*" {
        return true;
    }
    match granted.strip_suffix(".*") {
        Some(stem) => {
            wanted.len() > stem.len() + 1 && wanted.starts_with(stem) && wanted.as_bytes()[stem.len()] == b'.'
        }
        None => false,
    }
}

/// Turn (credential, request context, now) into a reason code.
///
/// Check order: existence and tenancy first (a key of another organization answers
/// NOT_FOUND, exactly like a key that does not exist), then who may use it (whitelist,
/// scope), and only then its state (revoked, window, uses). Someone who may not use a key
/// therefore learns nothing about its state; revocation outranks the time window and uses
/// because it is the owner's explicit decision.
pub fn verdict(cred: Option<&Credential>, ctx: &VerifyContext, now: DateTime<Utc>) -> Code {
    let Some(c) = cred else {
        return Code::NotFound;
    };
    if c.org_id != ctx.org_id {
        return Code::NotFound;
    }
    if !c.allowed_users.is_empty() {
        match ctx.user {
            Some(u) if c.allowed_users.contains(&u) => {}
            _ => return Code::Forbidden,
        }
    }
    if let Some(want) = ctx.scope.as_deref() {
        if !c.scopes.iter().any(|g| scope_covers(g, want)) {
            return Code::InsufficientScope;
        }
    }
    if c.revoked_at.is_some() {
        return Code::Revoked;
    }
    if let Some(nb) = c.not_before {
        if now < nb {
            return Code::NotYetValid;
        }
    }
    if let Some(exp) = c.expires_at {
        if now >= exp {
            return Code::Expired;
        }
    }
    if let Some(max) = c.max_uses {
        if c.used_count >= max {
            return Code::UsageExceeded;
        }
    }
    Code::Valid
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use proptest::prelude::*;

    fn base(now: DateTime<Utc>) -> Credential {
        Credential {
            scopes: vec!["read".into()],
            metadata: serde_json::Value::Null,
            ..Credential::fixture(Uuid::from_u128(1), Kind::Api, now)
        }
    }

    fn ctx() -> VerifyContext {
        VerifyContext {
            org_id: Uuid::from_u128(1),
            scope: None,
            user: None,
        }
    }

    #[test]
    fn every_code_is_reachable() {
        let now = Utc::now();
        assert_eq!(verdict(None, &ctx(), now), Code::NotFound);
        let c = base(now);
        assert_eq!(verdict(Some(&c), &ctx(), now), Code::Valid);
        let other = VerifyContext {
            org_id: Uuid::from_u128(2),
            ..ctx()
        };
        assert_eq!(verdict(Some(&c), &other, now), Code::NotFound);
        let mut w = base(now);
        w.allowed_users = vec![Uuid::from_u128(9)];
        assert_eq!(verdict(Some(&w), &ctx(), now), Code::Forbidden);
        assert_eq!(
            verdict(
                Some(&w),
                &VerifyContext {
                    user: Some(Uuid::from_u128(9)),
                    ..ctx()
                },
                now
            ),
            Code::Valid
        );
        assert_eq!(
            verdict(
                Some(&c),
                &VerifyContext {
                    scope: Some("write".into()),
                    ..ctx()
                },
                now
            ),
            Code::InsufficientScope
        );
        let mut r = base(now);
        r.revoked_at = Some(now);
        assert_eq!(verdict(Some(&r), &ctx(), now), Code::Revoked);
        let mut nb = base(now);
        nb.not_before = Some(now + Duration::seconds(1));
        assert_eq!(verdict(Some(&nb), &ctx(), now), Code::NotYetValid);
        let mut e = base(now);
        e.expires_at = Some(now);
        assert_eq!(verdict(Some(&e), &ctx(), now), Code::Expired);
        let mut u = base(now);
        u.max_uses = Some(2);
        u.used_count = 2;
        assert_eq!(verdict(Some(&u), &ctx(), now), Code::UsageExceeded);
    }

    #[test]
    fn scope_wildcards() {
        assert!(scope_covers("*", "anything"));
        assert!(scope_covers("keys.*", "keys.read"));
        assert!(!scope_covers("keys.*", "keys"));
        assert!(!scope_covers("keys.*", "keysx.read"));
        assert!(!scope_covers("read", "reader"));
    }

    proptest! {
        /// A caller of another organization, or one who is not whitelisted, gets the same
        /// answer whatever state the key is in: the state does not leak.
        #[test]
        fn outsiders_learn_nothing_about_state(
            revoked in any::<bool>(), nb in -5i64..5, exp in -5i64..5,
            max in proptest::option::of(0i64..3), used in 0i64..4, wl in any::<bool>()
        ) {
            let now = Utc::now();
            let mut c = base(now);
            if revoked { c.revoked_at = Some(now); }
            c.not_before = Some(now + Duration::seconds(nb));
            c.expires_at = Some(now + Duration::seconds(exp));
            c.max_uses = max;
            c.used_count = used;
            let foreign = VerifyContext { org_id: Uuid::from_u128(2), ..ctx() };
            prop_assert_eq!(verdict(Some(&c), &foreign, now), Code::NotFound);
            if wl {
                c.allowed_users = vec![Uuid::from_u128(5)];
                let stranger = VerifyContext { user: Some(Uuid::from_u128(6)), ..ctx() };
                prop_assert_eq!(verdict(Some(&c), &stranger, now), Code::Forbidden);
            }
        }

        /// VALID exactly when every rule holds.
        #[test]
        fn valid_iff_all_rules_hold(
            revoked in any::<bool>(), nb in -5i64..5, exp in -5i64..5,
            max in proptest::option::of(0i64..3), used in 0i64..4
        ) {
            let now = Utc::now();
            let mut c = base(now);
            if revoked { c.revoked_at = Some(now); }
            c.not_before = Some(now + Duration::seconds(nb));
            c.expires_at = Some(now + Duration::seconds(exp));
            c.max_uses = max;
            c.used_count = used;
            let expect = !revoked && nb <= 0 && exp > 0 && max.is_none_or(|m| used < m);
            prop_assert_eq!(verdict(Some(&c), &ctx(), now) == Code::Valid, expect);
        }
    }
}
