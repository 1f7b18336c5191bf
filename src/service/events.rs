//! The organization's event feed (the audit log): administrators read it.

use super::personal::scope;
use super::validate::MAX_PAGE;
use super::{Principal, Service};
use crate::core::event::Event;
use crate::error::Result;

impl Service {
    pub async fn list_events(&self, by: &Principal, after: i64, limit: u32) -> Result<Vec<Event>> {
        by.require(scope::ORG_READ)?;
        by.require_admin()?;
        self.store
            .list_events(by.org_id, after.max(0), limit.clamp(1, MAX_PAGE))
            .await
    }
}
