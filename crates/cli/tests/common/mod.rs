//! What the CLI's integration tests share: the `daikai` binary run with exactly the variables a
//! test gives it, and a [`World`] of the test's own (a migrated database and a declared AMQP
//! namespace on the real Postgres and RabbitMQ), with dead letters put where a consumer would
//! put them.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};
use std::time::Duration;

use bus::{Envelope, Namespace, Topology, WorkQueue};
use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde_json::Value;
use store::SuiteId;
use store::suites::{NewTicket, store_ticket};
use store::testing::TestDatabase;

/// `k1`, 32 bytes of 0x01: the key of [`test_support::secrets`].
pub const SECRET_KEY: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
/// `k2`, 32 bytes of 0x02.
pub const SECRET_KEY_2: &str = "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
/// The variables of daikai's that a test must not inherit from the shell running it.
pub const DAIKAI_VARS: [&str; 5] = [
    "DATABASE_URL",
    "AMQP_URL",
    "AMQP_NAMESPACE",
    "DAIKAI_SECRET_KEY",
    "DAIKAI_SECRET_KEYS_PREVIOUS",
];

/// The `daikai` binary with exactly these variables (the rest of the environment cleared of
/// daikai's).
pub fn daikai_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_daikai"));
    cmd.args(args);
    for name in DAIKAI_VARS {
        cmd.env_remove(name);
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd
}

/// Runs [`daikai_command`] to completion.
pub fn daikai(args: &[&str], env: &[(&str, &str)]) -> Output {
    daikai_command(args, env).output().unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(output)))
}

/// Asserts the command exited 0, showing what it printed otherwise; returns its stdout.
pub fn success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

/// A database and a declared topology of this test's own.
pub struct World {
    pub db: TestDatabase,
    pub namespace: Namespace,
    pub amqp_url: String,
}

impl World {
    pub async fn new() -> Self {
        let db = test_support::test_db().await;
        let namespace = test_support::test_namespace();
        let connection = bus::connect(&test_support::broker_url(), "cli-tests")
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        Topology::new(namespace.clone())
            .declare(&channel)
            .await
            .unwrap();
        drop(connection.close(200, "done".into()).await);
        Self {
            db,
            namespace,
            amqp_url: test_support::amqp_url(),
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(self.namespace.clone())
    }

    pub fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("DATABASE_URL", self.db.url()),
            ("AMQP_URL", self.amqp_url.as_str()),
            ("AMQP_NAMESPACE", self.namespace.as_str()),
            ("DAIKAI_SECRET_KEY", SECRET_KEY),
        ]
    }

    pub fn run(&self, args: &[&str]) -> Output {
        daikai(args, &self.env())
    }

    /// A suite ticket stored `age` ago (sealed under `k1`).
    pub async fn ticket(&self, suite: &str, age: Duration) {
        let mut conn = self.db.pool().acquire().await.unwrap();
        let now = chrono::Utc::now();
        let age = chrono::TimeDelta::from_std(age).unwrap();
        store_ticket(
            &mut conn,
            &test_support::secrets(),
            &NewTicket {
                suite_id: &SuiteId::parse(suite).unwrap(),
                ticket: "TICKET",
                wecom_time: (now - age).timestamp(),
                received_at: now - age,
            },
        )
        .await
        .unwrap();
    }

    /// Puts `copies` dead-letter copies of `envelope` into `{queue}.dead`, as the consumer
    /// would (headers with the reason, the attempt and the original routing key).
    pub async fn dead_letter(&self, queue: WorkQueue, envelope: &Envelope, copies: usize) {
        let topology = self.topology();
        let dead = &topology.queue(queue).dead;
        let connection = bus::connect(&test_support::broker_url(), "cli-tests")
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let mut headers = FieldTable::default();
        headers.insert(
            bus::consumer::ERROR_HEADER.into(),
            AMQPValue::LongString("handler panicked: test".into()),
        );
        headers.insert(
            bus::consumer::ROUTING_KEY_HEADER.into(),
            AMQPValue::LongString(envelope.routing_key().into()),
        );
        headers.insert(
            bus::consumer::ATTEMPT_HEADER.into(),
            AMQPValue::LongLongInt(1),
        );
        for _ in 0..copies {
            let properties = BasicProperties::default()
                .with_message_id(envelope.id.to_string().into())
                .with_correlation_id("cli-test".into())
                .with_delivery_mode(2)
                .with_headers(headers.clone());
            channel
                .basic_publish(
                    "".into(),
                    dead.as_str().into(),
                    BasicPublishOptions::default(),
                    &envelope.to_json().unwrap(),
                    properties,
                )
                .await
                .unwrap()
                .await
                .unwrap();
        }
        drop(connection.close(200, "done".into()).await);
    }

    /// Messages ready in `queue` (a full name), as the broker counts them.
    pub async fn depth(&self, queue: &str) -> u32 {
        let connection = bus::connect(&test_support::broker_url(), "cli-tests")
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        drop(connection.close(200, "done".into()).await);
        declared.message_count()
    }

    pub async fn teardown(self) {
        let connection = bus::connect(&test_support::broker_url(), "cli-tests")
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        drop(Topology::new(self.namespace).delete(&channel).await);
        drop(connection.close(200, "done".into()).await);
        self.db.drop_database().await.unwrap();
    }
}
