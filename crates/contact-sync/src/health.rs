//! What `/readyz` and `/metrics` report for this worker (served by `runtime::health`): ready
//! when it consumes `wecom.contacts` and reaches the database.

use std::time::Duration;

use bus::consumer::ConsumerStatus;
use sqlx::PgPool;

use crate::metrics::Metrics;

/// How long `/readyz` waits for the database.
const DB_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What the probes look at.
#[derive(Debug, Clone)]
pub(crate) struct Probes {
    pub(crate) consumer: ConsumerStatus,
    pub(crate) pool: PgPool,
    pub(crate) metrics: Metrics,
}

impl runtime::health::Probe for Probes {
    async fn ready(&self) -> (bool, String) {
        let consuming = self.consumer.is_consuming();
        let database = store::ping(&self.pool, DB_PING_TIMEOUT).await;
        (
            consuming && database,
            format!("consuming={consuming} database={database}"),
        )
    }

    fn metrics(&self) -> Result<String, prometheus::Error> {
        self.metrics.render()
    }
}
