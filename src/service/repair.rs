//! Start-up repair. Before each kind's rule was enforced on `POST /v1/keys`, that route could
//! mint personal keys for somebody else, with any scopes or no expiry, and share keys on
//! another organization's lock. Such keys must stop working, with an event each saying why.
//! Since the routes follow the rules, such keys can only predate them: the check runs once per
//! database, at the first start (or `keygate migrate`) of a version that has it, and records its
//! completion as a `RepairCompleted` event of the system organization. It is idempotent: a
//! revoked key is skipped, and a concurrent run on another node appends no second revocation.

use super::Service;
use super::collective::is_collective;
use super::personal::{CATALOGUE, MAX_LIFETIME_MONTHS};
use super::share::iso;
use crate::core::credential::{Credential, Kind};
use crate::core::event::{actor, aggregate, kind as ev};
use crate::core::share;
use crate::error::Result;
use chrono::{DateTime, Months, Utc};
use serde_json::{Value, json};
use std::collections::HashSet;
use uuid::Uuid;

/// The aggregate that records completed repairs (in the system organization).
const REPAIR_MARK: Uuid = Uuid::from_u128(0x6b65_7967_6174_6500_7265_7061_6972_0001);
/// This repair's name in its completion event.
const REPAIR_NAME: &str = "2026-12 keys that break their kind's rule";

/// What one repair run revoked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    pub personal_keys: usize,
    pub share_keys: usize,
}

/// Why a live personal key breaks the personal-key rules, if it does. `creator` is the actor of
/// its first event (its creation).
fn personal_violation(c: &Credential, creator: Option<&str>) -> Option<&'static str> {
    let Some(exp) = c.expires_at else {
        return Some("no expiry");
    };
    let limit = c
        .created_at
        .checked_add_months(Months::new(MAX_LIFETIME_MONTHS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if exp > limit {
        return Some("valid for more than 5 years");
    }
    if c.scopes.is_empty() || c.scopes.iter().any(|s| !CATALOGUE.contains(&s.as_str())) {
        return Some("a scope outside the catalogue");
    }
    let owner = c.owner_id.map(|o| actor("user", o));
    if owner.is_none() || owner.as_deref() != Some(creator.unwrap_or(c.created_by.as_str())) {
        return Some("created by somebody other than its owner");
    }
    None
}

/// The locks a live share key points at (its lock, or its doors' locks).
fn share_locks(c: &Credential) -> Vec<Option<i64>> {
    if is_collective(c) {
        c.subject
            .get("doors")
            .and_then(Value::as_array)
            .map(|ds| ds.iter().map(|d| d.get("lockId").and_then(Value::as_i64)).collect())
            .unwrap_or_default()
    } else {
        vec![c.subject.get("lock_id").and_then(Value::as_i64)]
    }
}

impl Service {
    /// Revoke every live personal key that breaks the personal-key rules and every live share
    /// key whose lock is not its own organization's.
    pub async fn repair(&self) -> Result<RepairReport> {
        let mut report = RepairReport::default();
        let orgs = self.store.list_orgs().await?;
        let Some(system) = orgs.iter().find(|o| o.is_system).map(|o| o.id) else {
            // Nothing was ever created through a route yet.
            return Ok(report);
        };
        let done = self
            .store
            .events_of(system, REPAIR_MARK)
            .await?
            .iter()
            .any(|e| e.data.get("repair").and_then(Value::as_str) == Some(REPAIR_NAME));
        if done {
            return Ok(report);
        }
        for org in orgs {
            let locks: HashSet<i64> = self.store.list_locks(org.id).await?.iter().map(|l| l.id).collect();
            for c in self.live_keys(org.id, Kind::Personal).await? {
                let events = self.store.events_of(org.id, c.id).await?;
                if let Some(why) = personal_violation(&c, events.first().map(|e| e.actor.as_str())) {
                    if self.repair_revoke(&c, why, false).await? {
                        report.personal_keys += 1;
                    }
                }
            }
            for c in self.live_keys(org.id, Kind::Share).await? {
                let foreign = share_locks(&c).iter().any(|l| !l.is_some_and(|id| locks.contains(&id)));
                if foreign {
                    let events = self.store.events_of(org.id, c.id).await?;
                    let share_events = events.first().is_some_and(|e| e.aggregate_type == share::AGGREGATE);
                    if self
                        .repair_revoke(&c, "its lock is not its organization's", share_events)
                        .await?
                    {
                        report.share_keys += 1;
                    }
                }
            }
        }
        let mark = self.event(
            system,
            "repair",
            REPAIR_MARK,
            "RepairCompleted",
            json!({"repair": REPAIR_NAME, "personal_keys": report.personal_keys, "share_keys": report.share_keys}),
            "system",
        );
        self.store.append_event(&mark).await?;
        if report != RepairReport::default() {
            tracing::warn!(
                personal_keys = report.personal_keys,
                share_keys = report.share_keys,
                "revoked keys that broke their kind's rules (see their events)"
            );
        }
        Ok(report)
    }

    async fn live_keys(&self, org_id: Uuid, kind: Kind) -> Result<Vec<Credential>> {
        self.credentials_where(org_id, kind, None, |c| c.revoked_at.is_none())
            .await
    }

    /// Revoke one key with an event that says why; true when this call revoked it.
    async fn repair_revoke(&self, c: &Credential, why: &str, share_events: bool) -> Result<bool> {
        const ACTOR: &str = "system";
        let now = self.now();
        let e = if share_events {
            let mut data = serde_json::Map::new();
            data.insert("tempKeyUuid".into(), c.id.to_string().into());
            if let Some(l) = c.subject.get("lock_id") {
                data.insert("lockId".into(), l.clone());
            }
            data.insert("deletedBy".into(), ACTOR.into());
            data.insert("timestamp".into(), iso(now).into());
            data.insert("reason".into(), why.into());
            self.event(
                c.org_id,
                share::AGGREGATE,
                c.id,
                share::TEMP_KEY_DELETED,
                Value::Object(data),
                ACTOR,
            )
        } else {
            self.event(
                c.org_id,
                aggregate::KEY,
                c.id,
                ev::KEY_REVOKED,
                json!({"reason": why}),
                ACTOR,
            )
        };
        Ok(matches!(
            self.store.revoke_credential(c.org_id, c.id, now, ACTOR, &e).await?,
            Some((_, Some(_)))
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn personal(owner: Uuid, created_by: &str) -> Credential {
        let now = Utc::now();
        Credential {
            owner_id: Some(owner),
            prefix: "abcdef".into(),
            scopes: vec!["Account.Read".into()],
            expires_at: Some(now + chrono::Duration::days(30)),
            created_by: created_by.into(),
            updated_by: created_by.into(),
            ..Credential::fixture(Uuid::now_v7(), Kind::Personal, now)
        }
    }

    #[test]
    fn personal_keys_that_break_the_rules_are_named() {
        let owner = Uuid::now_v7();
        let me = format!("user:{owner}");
        let ok = personal(owner, &me);
        assert_eq!(personal_violation(&ok, Some(&me)), None);
        let mut c = ok.clone();
        c.expires_at = None;
        assert_eq!(personal_violation(&c, Some(&me)), Some("no expiry"));
        let mut c = ok.clone();
        c.expires_at = c.created_at.checked_add_months(Months::new(61));
        assert_eq!(personal_violation(&c, Some(&me)), Some("valid for more than 5 years"));
        let mut c = ok.clone();
        c.scopes = vec!["superpower".into()];
        assert_eq!(personal_violation(&c, Some(&me)), Some("a scope outside the catalogue"));
        let c = personal(owner, "api_key:x");
        assert_eq!(
            personal_violation(&c, Some("api_key:x")),
            Some("created by somebody other than its owner")
        );
        // The first event's actor decides, not a column that could say otherwise.
        assert_eq!(
            personal_violation(&ok, Some("user:someone-else")),
            Some("created by somebody other than its owner")
        );
    }
}
