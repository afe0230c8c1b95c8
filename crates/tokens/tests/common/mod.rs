//! What only the token tests need; the rest (database, keyring, ids, tenants, polling) is
//! `test_support`'s.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

/// A client for a WeCom double (wiremock) at `base`.
pub fn wecom_client(base: &str) -> wecom::api::Client {
    let mut config = wecom::api::ClientConfig::new(url::Url::parse(base).unwrap());
    config.timeout = Duration::from_secs(30);
    wecom::api::Client::new(config).unwrap()
}
