//! The bus view of a stored tenant (feature `store`): the one place where the tenants table's
//! [`store::tenants::TenantStatus`] and the wire's [`TenantStatus`] meet.
//!
//! Two types on purpose: the column type belongs to `store` (SQL only), the wire type to the
//! envelope, and neither crate depends on the other. The conversion lives here, behind a
//! feature, so only a service that reads tenants *and* publishes about them (the auth worker,
//! contact sync) links both. Both spell each status the same: `pending`, `active`, `suspended`,
//! `revoked` (the column value and the JSON string).

use store::tenants;

use crate::envelope::{Tenant, TenantStatus};

impl From<tenants::TenantStatus> for TenantStatus {
    fn from(status: tenants::TenantStatus) -> Self {
        match status {
            tenants::TenantStatus::Pending => Self::Pending,
            tenants::TenantStatus::Active => Self::Active,
            tenants::TenantStatus::Suspended => Self::Suspended,
            tenants::TenantStatus::Revoked => Self::Revoked,
        }
    }
}

impl From<TenantStatus> for tenants::TenantStatus {
    fn from(status: TenantStatus) -> Self {
        match status {
            TenantStatus::Pending => Self::Pending,
            TenantStatus::Active => Self::Active,
            TenantStatus::Suspended => Self::Suspended,
            TenantStatus::Revoked => Self::Revoked,
        }
    }
}

/// What a `tenant.*` event says about a stored tenant.
impl From<&tenants::Tenant> for Tenant {
    fn from(row: &tenants::Tenant) -> Self {
        Self {
            suite_id: row.suite_id.clone(),
            corp_id: row.corp_id.clone(),
            corp_name: row.corp_name.clone(),
            agent_id: row.agent_id,
            status: row.status.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_converts_both_ways_and_keeps_its_spelling() {
        for stored in [
            tenants::TenantStatus::Pending,
            tenants::TenantStatus::Active,
            tenants::TenantStatus::Suspended,
            tenants::TenantStatus::Revoked,
        ] {
            let wire = TenantStatus::from(stored);
            assert_eq!(tenants::TenantStatus::from(wire), stored);
            assert_eq!(
                serde_json::to_value(wire).unwrap(),
                serde_json::Value::from(stored.as_str())
            );
        }
    }
}
