//! The directory's rules, statement by statement: the newest observation wins whatever the
//! commit order, tombstones block resurrection by older reads, mark and sweep, one running
//! sync run per tenant with leases and fencing, and the shared call budget.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use store::directory::quota::{self, Reservation};
use store::directory::runs::{self, Completed, Progress, Start};
use store::directory::tags::TagSnapshot;
use store::directory::{self, Observation, departments, tags, users};
use wecom::api::{Department, User};
use wecom::ids::{DepartmentId, TagId, UserId};

async fn tenant(db: &store::testing::TestDatabase) -> i64 {
    test_support::active_tenant(
        db.pool(),
        &test_support::secrets(),
        &test_support::suite("dkdir"),
        &test_support::corp("wwdir"),
        "permanent-code",
    )
    .await
    .id
}

fn at(tenant_id: i64, observed_at: DateTime<Utc>, run: Option<i64>) -> Observation {
    Observation {
        tenant_id,
        observed_at,
        run,
        wecom_time: None,
    }
}

fn user(userid: &str, position: &str, departments: &[i64]) -> User {
    serde_json::from_value(json!({
        "userid": userid, "position": position, "department": departments,
        "order": departments.iter().map(|_| 0).collect::<Vec<_>>(),
        "is_leader_in_dept": departments.iter().map(|_| 1).collect::<Vec<_>>(),
    }))
    .unwrap()
}

fn department(id: i64, name: &str) -> Department {
    serde_json::from_value(json!({"id": id, "name": name, "parentid": 1, "order": 1})).unwrap()
}

async fn live_users(db: &store::testing::TestDatabase, tenant_id: i64) -> Vec<User> {
    users::read_users(&mut db.pool().acquire().await.unwrap(), tenant_id)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_later_read_wins_whatever_order_the_writes_commit_in() {
    let db = test_support::test_db().await;
    let tenant_id = tenant(&db).await;
    let mut conn = db.pool().acquire().await.unwrap();
    let (t1, t2) = (Utc::now(), Utc::now() + TimeDelta::seconds(1));
    // The newer read commits first, the older one after it.
    let newer = users::upsert_users(
        &mut conn,
        &at(tenant_id, t2, None),
        &[user("zhangsan", "new", &[2])],
    )
    .await
    .unwrap();
    let older = users::upsert_users(
        &mut conn,
        &at(tenant_id, t1, None),
        &[user("zhangsan", "old", &[3, 4])],
    )
    .await
    .unwrap();
    assert_eq!((newer.rows, newer.added, older.rows), (1, 1, 0));
    let stored = live_users(&db, tenant_id).await;
    assert_eq!(stored[0].position.as_deref(), Some("new"));
    assert_eq!(
        stored[0].department,
        vec![DepartmentId::new(2).unwrap()],
        "memberships follow the winning read"
    );

    departments::upsert_departments(&mut conn, &at(tenant_id, t2, None), &[department(2, "新")])
        .await
        .unwrap();
    departments::upsert_departments(&mut conn, &at(tenant_id, t1, None), &[department(2, "旧")])
        .await
        .unwrap();
    let stored = departments::read_departments(&mut conn, tenant_id)
        .await
        .unwrap();
    assert_eq!(stored[0].name.as_deref(), Some("新"));
    assert_eq!(
        stored[0].department_leader,
        vec![UserId::parse("zhangsan").unwrap()],
        "leaders come from the memberships"
    );

    let tag = |name: &str, member: &str| {
        TagSnapshot::new(
            TagId::new(1).unwrap(),
            Some(name.to_owned()),
            vec![UserId::parse(member).unwrap()],
            vec![],
        )
    };
    tags::upsert_tags(
        &mut conn,
        &at(tenant_id, t2, None),
        &[tag("new", "zhangsan")],
    )
    .await
    .unwrap();
    tags::upsert_tags(&mut conn, &at(tenant_id, t1, None), &[tag("old", "lisi")])
        .await
        .unwrap();
    let stored = tags::read_tags(&mut conn, tenant_id).await.unwrap();
    assert_eq!(stored, vec![tag("new", "zhangsan")]);
}

#[tokio::test]
async fn a_tombstone_blocks_older_reads_and_yields_to_newer_ones() {
    let db = test_support::test_db().await;
    let tenant_id = tenant(&db).await;
    let mut conn = db.pool().acquire().await.unwrap();
    let now = Utc::now();
    let id = UserId::parse("wangwu").unwrap();
    users::upsert_users(
        &mut conn,
        &at(tenant_id, now, None),
        &[user("wangwu", "a", &[1])],
    )
    .await
    .unwrap();
    tags::upsert_tags(
        &mut conn,
        &at(tenant_id, now, None),
        &[TagSnapshot::new(
            TagId::new(5).unwrap(),
            None,
            vec![id.clone()],
            vec![],
        )],
    )
    .await
    .unwrap();
    let deleted = now + TimeDelta::seconds(2);
    assert!(
        users::tombstone_user(&mut conn, &at(tenant_id, deleted, None), &id)
            .await
            .unwrap()
    );
    assert!(live_users(&db, tenant_id).await.is_empty());
    assert!(
        tags::read_tags(&mut conn, tenant_id).await.unwrap()[0]
            .users
            .is_empty(),
        "a deleted member leaves its tags"
    );
    // A read from before the deletion, committed late, does not resurrect the member.
    let stale = users::upsert_users(
        &mut conn,
        &at(tenant_id, now + TimeDelta::seconds(1), None),
        &[user("wangwu", "a", &[1])],
    )
    .await
    .unwrap();
    assert_eq!(stale.rows, 0);
    assert!(live_users(&db, tenant_id).await.is_empty());
    // A re-creation read later brings it back, counted as added.
    let back = users::upsert_users(
        &mut conn,
        &at(tenant_id, now + TimeDelta::seconds(3), None),
        &[user("wangwu", "b", &[1])],
    )
    .await
    .unwrap();
    assert_eq!((back.rows, back.added), (1, 1));
    // A tombstone for a member never seen is stored too (a delete read before its create).
    let ghost = UserId::parse("ghost").unwrap();
    assert!(
        !users::tombstone_user(
            &mut conn,
            &at(tenant_id, now + TimeDelta::seconds(5), None),
            &ghost
        )
        .await
        .unwrap()
    );
    let early = users::upsert_users(
        &mut conn,
        &at(tenant_id, now + TimeDelta::seconds(4), None),
        &[user("ghost", "x", &[1])],
    )
    .await
    .unwrap();
    assert_eq!(early.rows, 0);
}

#[tokio::test]
async fn the_sweep_removes_what_the_run_did_not_see_and_keeps_later_observations() {
    let db = test_support::test_db().await;
    let tenant_id = tenant(&db).await;
    let mut conn = db.pool().acquire().await.unwrap();
    let before = Utc::now() - TimeDelta::seconds(10);
    users::upsert_users(
        &mut conn,
        &at(tenant_id, before, None),
        &[user("gone", "", &[1]), user("stays", "", &[1])],
    )
    .await
    .unwrap();
    let Start::New(run) = runs::start(
        &mut conn,
        tenant_id,
        "test",
        None,
        "me",
        Duration::from_secs(60),
    )
    .await
    .unwrap() else {
        panic!("a new run");
    };
    users::upsert_users(
        &mut conn,
        &at(tenant_id, run.started_at, Some(run.id)),
        &[user("stays", "", &[1])],
    )
    .await
    .unwrap();
    // Created by an event during the run: not seen by the run, but observed after it started.
    users::upsert_users(
        &mut conn,
        &at(tenant_id, run.started_at + TimeDelta::seconds(1), None),
        &[user("newcomer", "", &[1])],
    )
    .await
    .unwrap();
    let removed = directory::sweep_unseen(&mut conn, tenant_id, run.id, run.started_at)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let ids: Vec<String> = live_users(&db, tenant_id)
        .await
        .into_iter()
        .map(|u| u.userid.as_str().to_owned())
        .collect();
    assert_eq!(ids, ["newcomer", "stays"]);
    assert_eq!(
        directory::purge_tenant(&mut conn, tenant_id).await.unwrap(),
        2
    );
    assert_eq!(
        directory::counts(&mut conn, tenant_id).await.unwrap(),
        directory::Counts::default()
    );
}

#[tokio::test]
async fn one_run_per_tenant_with_reruns_takeovers_and_fencing() {
    let db = test_support::test_db().await;
    let tenant_id = tenant(&db).await;
    let mut conn = db.pool().acquire().await.unwrap();
    let lease = Duration::from_secs(60);
    let trigger = uuid::Uuid::now_v7();
    let Start::New(run) = runs::start(&mut conn, tenant_id, "activated", Some(trigger), "a", lease)
        .await
        .unwrap()
    else {
        panic!("a new run");
    };
    // The same event delivered again (its consumer died): its own run, no second pass.
    let Start::Redelivered(same) =
        runs::start(&mut conn, tenant_id, "activated", Some(trigger), "b", lease)
            .await
            .unwrap()
    else {
        panic!("the event's own run");
    };
    assert!(same.id == run.id && !same.rerun_requested);
    let Start::Busy(busy) = runs::start(&mut conn, tenant_id, "changed", None, "b", lease)
        .await
        .unwrap()
    else {
        panic!("the running run is busy");
    };
    assert!(busy.rerun_requested && busy.id == run.id);
    // The lease lapses: replica b takes the run over; a is fenced off at its next checkpoint.
    sqlx::query("update sync_runs set lease_until = now() - interval '1 second' where id = $1")
        .bind(run.id)
        .execute(&mut *conn)
        .await
        .unwrap();
    let Start::TakenOver(taken) = runs::start(&mut conn, tenant_id, "changed", None, "b", lease)
        .await
        .unwrap()
    else {
        panic!("taken over");
    };
    assert_eq!((taken.id, taken.takeovers), (run.id, 1));
    let checkpoint = json!({"next": 3});
    let progress = Progress {
        pages: 2,
        ..Progress::default()
    };
    assert!(
        !runs::checkpoint(
            &mut conn,
            run.id,
            "a",
            lease,
            "users",
            &checkpoint,
            &progress
        )
        .await
        .unwrap()
    );
    assert!(
        runs::checkpoint(
            &mut conn,
            run.id,
            "b",
            lease,
            "users",
            &checkpoint,
            &progress
        )
        .await
        .unwrap()
    );
    assert_eq!(
        runs::complete(&mut conn, run.id, "a", 0, lease)
            .await
            .unwrap(),
        Completed::NotOwner
    );
    assert_eq!(
        runs::complete(&mut conn, run.id, "b", 0, lease)
            .await
            .unwrap(),
        Completed::RerunRequested
    );
    let done = runs::run(&mut conn, run.id).await.unwrap().unwrap();
    assert_eq!(
        (done.status.as_str(), done.pages, done.phase.as_str()),
        ("completed", 2, "done")
    );
    assert!(matches!(
        runs::start(&mut conn, tenant_id, "rerun", None, "b", lease)
            .await
            .unwrap(),
        Start::New(_)
    ));
    assert!(runs::cancel(&mut conn, tenant_id, "revoked").await.unwrap());
}

#[tokio::test]
async fn the_call_budget_is_shared_and_a_45009_holds_every_replica_off() {
    let db = test_support::test_db().await;
    let mut conn = db.pool().acquire().await.unwrap();
    let corp = test_support::corp(&format!("wwquota{}", uuid::Uuid::new_v4().simple()));
    for _ in 0..3 {
        assert!(matches!(
            quota::reserve(&mut conn, &corp, "user/get", 20, 60)
                .await
                .unwrap(),
            Reservation::Granted { .. }
        ));
    }
    assert!(matches!(
        quota::reserve(&mut conn, &corp, "user/get", 20, 60)
            .await
            .unwrap(),
        Reservation::Exhausted { .. }
    ));
    assert!(
        matches!(
            quota::reserve(&mut conn, &corp, "user/list", 20, 60)
                .await
                .unwrap(),
            Reservation::Granted { .. }
        ),
        "per API"
    );
    quota::block(&mut conn, &corp, "user/list", Duration::from_secs(30))
        .await
        .unwrap();
    let Reservation::Exhausted { until, now } =
        quota::reserve(&mut conn, &corp, "user/list", 1, 60)
            .await
            .unwrap()
    else {
        panic!("blocked");
    };
    assert!(until - now > TimeDelta::seconds(25));
}
