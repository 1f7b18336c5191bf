//! Who is calling: the authenticated principal every use case receives, and the checks on it
//! that every use case shares (scopes, administrator rights, what the caller may grant).

use super::personal::{self, scope_implies};
use crate::core::credential::Credential;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// How a request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    Ticket,
    Bearer,
    ApiKey,
    Session,
    PersonalKey,
    /// The operator at the machine: the CLI, which needs no credential (it has the database).
    Operator,
}

/// The authenticated caller. Every operation is confined to `org_id`.
#[derive(Debug, Clone)]
pub struct Principal {
    pub org_id: Uuid,
    pub user_id: Option<Uuid>,
    /// Administers its organization (org admins and organization API keys).
    pub is_admin: bool,
    /// Administers every organization (admins of the bootstrap organization).
    pub is_system_admin: bool,
    /// For the audit log: `user:<uuid>` or `api_key:<uuid>`.
    pub actor: String,
    /// How records show who wrote them: the user's name, or the organization API key's name.
    pub name: String,
    /// The user's person id (SuperOffice surfaces).
    pub person_id: Option<i64>,
    pub method: AuthMethod,
    /// `Some` when authenticated by a personal access key: only these scopes are granted.
    pub scopes: Option<Vec<String>>,
    /// When authenticated by a personal access key: when that key expires. Nothing it creates
    /// may outlive it.
    pub valid_until: Option<DateTime<Utc>>,
}

impl Principal {
    /// The operator at the machine (the CLI), administering one organization; the audit log
    /// records it as `cli`, as the CLI's other writes.
    pub(crate) fn operator(org_id: Uuid) -> Self {
        Principal {
            org_id,
            user_id: None,
            is_admin: true,
            is_system_admin: false,
            actor: "cli".into(),
            name: "cli".into(),
            person_id: None,
            method: AuthMethod::Operator,
            scopes: None,
            valid_until: None,
        }
    }

    /// May this caller act within `scope`? Unscoped credentials (passwords, tickets, JWTs,
    /// API keys, sessions) may; a personal access key only within its scopes, where a
    /// `X.ReadWrite` scope implies `X.Read`.
    pub fn require(&self, scope: &str) -> Result<()> {
        match &self.scopes {
            None => Ok(()),
            Some(granted) if granted.iter().any(|g| scope_implies(g, scope)) => Ok(()),
            Some(_) => Err(Error::Forbidden(format!(
                "the personal access key lacks the scope {scope}"
            ))),
        }
    }

    /// Refuse credentials that are limited by scopes (they must not mint unlimited ones).
    pub fn require_unscoped(&self, what: &str) -> Result<()> {
        match self.scopes {
            None => Ok(()),
            Some(_) => Err(Error::Forbidden(format!(
                "{what} cannot be obtained with a personal access key"
            ))),
        }
    }

    /// A person who signed in (password, ticket, JWT or session): never an organization API key
    /// or a personal key, so that neither can take over an account.
    pub(crate) fn require_person(&self) -> Result<()> {
        match self.method {
            AuthMethod::Basic | AuthMethod::Ticket | AuthMethod::Bearer | AuthMethod::Session => Ok(()),
            AuthMethod::ApiKey | AuthMethod::PersonalKey | AuthMethod::Operator => Err(Error::Forbidden(
                "only a signed-in person may do this, not an API key or a personal access key".into(),
            )),
        }
    }

    pub(crate) fn require_admin(&self) -> Result<()> {
        if self.is_admin {
            Ok(())
        } else {
            Err(Error::Forbidden("administrator rights required".into()))
        }
    }

    /// May this caller see and manage this credential? Admins see their organization's keys,
    /// users their own.
    pub(crate) fn may_manage(&self, c: &Credential) -> bool {
        c.org_id == self.org_id && (self.is_admin || (self.user_id.is_some() && c.owner_id == self.user_id))
    }

    /// A key this caller creates may carry a scope of keygate's catalogue only when the caller
    /// holds it (a scoped caller cannot hand out more than it has). Scopes outside the
    /// catalogue are the application's own vocabulary, which keygate does not interpret.
    pub(crate) fn may_grant_scopes(&self, field: &str, scopes: &[String]) -> Result<()> {
        if self.scopes.is_none() {
            return Ok(());
        }
        for (i, s) in scopes.iter().enumerate() {
            if personal::CATALOGUE.iter().any(|c| c.eq_ignore_ascii_case(s)) && self.require(s).is_err() {
                return Err(Error::Forbidden(format!(
                    "{field}[{i}]: the personal access key cannot grant {s}, which it lacks"
                )));
            }
        }
        Ok(())
    }

    /// A key this caller creates may not outlive the caller's own key: with a personal access
    /// key, an expiry is required and must not be after that key's.
    pub(crate) fn may_grant_lifetime(&self, field: &str, expires: Option<DateTime<Utc>>) -> Result<()> {
        let Some(limit) = self.valid_until else {
            return Ok(());
        };
        match expires {
            Some(t) if t <= limit => Ok(()),
            _ => Err(Error::invalid(
                field,
                format!(
                    "must be set, and no later than the expiry of the personal access key that asks ({})",
                    limit.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            )),
        }
    }
}
