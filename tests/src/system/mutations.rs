//! Random directory changes made in wecom-sim, each pushed by it as the `change_contact`
//! callback WeCom sends: members created, edited, moved, renamed and deleted; departments
//! created, renamed, moved and deleted; tag members and departments added and removed.
//! Deterministic for a seed, so a failing run can be repeated.

use std::collections::{HashMap, HashSet};

use reqwest::Method;
use serde_json::{Value, json};

use super::SimClient;
use super::clients::assert_delivered;

/// What the mutations know of the corp's directory (the full view, not only the app's).
#[derive(Debug, Default)]
struct Model {
    users: Vec<String>,
    /// Department id → parent id (the root has none).
    parents: HashMap<i64, Option<i64>>,
    /// Departments the mutations created (only those are ever deleted).
    created_departments: Vec<i64>,
    tags: Vec<i64>,
}

impl Model {
    async fn load(sim: &SimClient, corp_id: &str) -> Self {
        let full = sim
            .call(
                Method::GET,
                &format!("/sim/corps/{corp_id}/directory?view=full"),
                None,
            )
            .await;
        let ids = |part: &str, key: &str| -> Vec<Value> {
            full[part]
                .as_array()
                .map(|items| items.iter().map(|i| i[key].clone()).collect())
                .unwrap_or_default()
        };
        let parents = full["departments"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|d| {
                        (
                            d["id"].as_i64().unwrap(),
                            d["parentid"].as_i64().filter(|p| *p != 0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            users: ids("users", "userid")
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect(),
            parents,
            created_departments: Vec::new(),
            tags: ids("tags", "tagid")
                .iter()
                .filter_map(Value::as_i64)
                .collect(),
        }
    }

    /// `id` and every department below it.
    fn subtree(&self, id: i64) -> HashSet<i64> {
        let mut out = HashSet::from([id]);
        loop {
            let before = out.len();
            for (child, parent) in &self.parents {
                if parent.is_some_and(|p| out.contains(&p)) {
                    out.insert(*child);
                }
            }
            if out.len() == before {
                return out;
            }
        }
    }

    fn departments(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.parents.keys().copied().collect();
        ids.sort_unstable();
        ids
    }
}

/// SplitMix64: small, seedable, good enough to pick mutations.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len())].clone())
    }
}

/// Counts of what [`apply`] did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Applied {
    /// Successful mutations (each pushed one callback).
    pub total: usize,
    /// Members created, edited or moved, renamed, deleted.
    pub users: usize,
    /// Departments created, renamed, moved, deleted.
    pub departments: usize,
    /// Tag membership changes.
    pub tags: usize,
}

/// Whether each change waits for its callback's delivery before the next one is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// One at a time: the next change after the push was delivered (WeCom's usual order).
    Delivered,
    /// As fast as the simulator takes them: pushes queue up (and shuffle, if it shuffles, or
    /// wait out an outage of the ingress). [`SimClient::wait_deliveries_settled`] then waits.
    Queued,
}

/// Makes `count` random changes to `corp_id`'s directory, each pushed as its callback, at
/// `pace`. Created ids derive from `seed`: use another seed for another round on the same corp.
pub async fn apply(sim: &SimClient, corp_id: &str, count: usize, seed: u64, pace: Pace) -> Applied {
    let mut model = Model::load(sim, corp_id).await;
    let mut rng = Rng(seed);
    let mut applied = Applied::default();
    let base = format!("/sim/corps/{corp_id}");
    let mut serial = 0_u64;
    let sim = &Mutator { sim, pace };
    while applied.total < count {
        serial += 1;
        let roll = rng.below(100);
        let done = match roll {
            0..=19 => create_user(sim, &base, &mut model, &mut rng, seed, serial).await,
            20..=39 => edit_user(sim, &base, &model, &mut rng).await,
            40..=47 => rename_user(sim, &base, &mut model, &mut rng, seed, serial).await,
            48..=57 => delete_user(sim, &base, &mut model, &mut rng).await,
            58..=65 => create_department(sim, &base, &mut model, &mut rng, seed, serial).await,
            66..=73 => rename_department(sim, &base, &model, &mut rng, serial).await,
            74..=81 => move_department(sim, &base, &mut model, &mut rng).await,
            82..=85 => delete_department(sim, &base, &mut model).await,
            _ => change_tag(sim, &base, &model, &mut rng).await,
        };
        if done {
            applied.total += 1;
            match roll {
                0..=57 => applied.users += 1,
                58..=85 => applied.departments += 1,
                _ => applied.tags += 1,
            }
        }
    }
    applied
}

/// The simulator and the pace of the changes.
struct Mutator<'a> {
    sim: &'a SimClient,
    pace: Pace,
}

/// A change through the control API; `false` when the simulator refuses it (as WeCom would,
/// e.g. deleting a department that still has members), which is not counted.
async fn mutate(sim: &Mutator<'_>, method: Method, path: &str, body: Option<&Value>) -> bool {
    let wait = sim.pace == Pace::Delivered;
    let (status, answer) = sim
        .sim
        .try_call(method, &format!("{path}?wait={wait}"), body)
        .await;
    if status.is_client_error() {
        return false;
    }
    assert!(status.is_success(), "wecom-sim {path}: {status} {answer}");
    assert_delivered(&answer);
    true
}

async fn create_user(
    sim: &Mutator<'_>,
    base: &str,
    model: &mut Model,
    rng: &mut Rng,
    seed: u64,
    serial: u64,
) -> bool {
    let userid = format!("m{seed:x}x{serial}");
    let departments = model.departments();
    let mut placed = vec![rng.pick(&departments).unwrap_or(1)];
    if rng.below(3) == 0 {
        let second = rng.pick(&departments).unwrap_or(1);
        if !placed.contains(&second) {
            placed.push(second);
        }
    }
    let leader: Vec<i64> = placed
        .iter()
        .map(|_| i64::from(rng.below(4) == 0))
        .collect();
    let body = json!({
        "userid": userid, "name": format!("成员{serial}"), "department": placed,
        "is_leader_in_dept": leader, "position": "工程师", "mobile": format!("138{serial:08}"),
    });
    let done = mutate(sim, Method::POST, &format!("{base}/users"), Some(&body)).await;
    if done {
        model.users.push(userid);
    }
    done
}

async fn edit_user(sim: &Mutator<'_>, base: &str, model: &Model, rng: &mut Rng) -> bool {
    let Some(userid) = rng.pick(&model.users) else {
        return false;
    };
    let body = match rng.below(3) {
        0 => json!({"name": format!("改名{}", rng.below(10_000))}),
        1 => json!({"position": format!("职位{}", rng.below(100))}),
        _ => {
            let to = rng.pick(&model.departments()).unwrap_or(1);
            json!({"department": [to], "is_leader_in_dept": [i64::from(rng.below(5) == 0)]})
        }
    };
    mutate(
        sim,
        Method::PATCH,
        &format!("{base}/users/{userid}"),
        Some(&body),
    )
    .await
}

async fn rename_user(
    sim: &Mutator<'_>,
    base: &str,
    model: &mut Model,
    rng: &mut Rng,
    seed: u64,
    serial: u64,
) -> bool {
    let Some(index) = (!model.users.is_empty()).then(|| rng.below(model.users.len())) else {
        return false;
    };
    let new_userid = format!("r{seed:x}x{serial}");
    let body = json!({"new_userid": new_userid});
    let path = format!("{base}/users/{}", model.users[index]);
    let done = mutate(sim, Method::PATCH, &path, Some(&body)).await;
    if done {
        model.users[index] = new_userid;
    }
    done
}

async fn delete_user(sim: &Mutator<'_>, base: &str, model: &mut Model, rng: &mut Rng) -> bool {
    if model.users.is_empty() {
        return false;
    }
    let userid = model.users.swap_remove(rng.below(model.users.len()));
    mutate(sim, Method::DELETE, &format!("{base}/users/{userid}"), None).await
}

async fn create_department(
    sim: &Mutator<'_>,
    base: &str,
    model: &mut Model,
    rng: &mut Rng,
    seed: u64,
    serial: u64,
) -> bool {
    let parent = rng.pick(&model.departments()).unwrap_or(1);
    // Ids far above the seeded ones, distinct per seed and per change.
    let id = 500_000 + i64::try_from((seed % 1_000) * 10_000 + serial % 10_000).unwrap_or(0);
    let body = json!({"id": id, "name": format!("新部门{serial}"), "parentid": parent});
    let done = mutate(
        sim,
        Method::POST,
        &format!("{base}/departments"),
        Some(&body),
    )
    .await;
    if done {
        model.parents.insert(id, Some(parent));
        model.created_departments.push(id);
    }
    done
}

async fn rename_department(
    sim: &Mutator<'_>,
    base: &str,
    model: &Model,
    rng: &mut Rng,
    serial: u64,
) -> bool {
    let Some(id) = rng.pick(&model.departments()).filter(|id| *id != 1) else {
        return false;
    };
    let body = json!({"name": format!("部门改名{serial}")});
    mutate(
        sim,
        Method::PATCH,
        &format!("{base}/departments/{id}"),
        Some(&body),
    )
    .await
}

async fn move_department(sim: &Mutator<'_>, base: &str, model: &mut Model, rng: &mut Rng) -> bool {
    let Some(id) = rng.pick(&model.departments()).filter(|id| *id != 1) else {
        return false;
    };
    let below = model.subtree(id);
    let targets: Vec<i64> = model
        .departments()
        .into_iter()
        .filter(|d| !below.contains(d))
        .collect();
    let Some(parent) = rng.pick(&targets) else {
        return false;
    };
    let body = json!({"parentid": parent});
    let done = mutate(
        sim,
        Method::PATCH,
        &format!("{base}/departments/{id}"),
        Some(&body),
    )
    .await;
    if done {
        model.parents.insert(id, Some(parent));
    }
    done
}

async fn delete_department(sim: &Mutator<'_>, base: &str, model: &mut Model) -> bool {
    // The newest created department without children (members make the simulator refuse).
    let childless = model
        .created_departments
        .iter()
        .rev()
        .copied()
        .find(|id| !model.parents.values().any(|p| *p == Some(*id)));
    let Some(id) = childless else {
        return false;
    };
    let done = mutate(
        sim,
        Method::DELETE,
        &format!("{base}/departments/{id}"),
        None,
    )
    .await;
    model.created_departments.retain(|d| *d != id);
    if done {
        model.parents.remove(&id);
    }
    done
}

async fn change_tag(sim: &Mutator<'_>, base: &str, model: &Model, rng: &mut Rng) -> bool {
    let Some(tag) = rng.pick(&model.tags) else {
        return false;
    };
    let (Some(user), Some(department)) = (rng.pick(&model.users), rng.pick(&model.departments()))
    else {
        return false;
    };
    let body = match rng.below(4) {
        0 => json!({"add_users": [user]}),
        1 => json!({"del_users": [user]}),
        2 => json!({"add_parties": [department]}),
        _ => json!({"del_parties": [department]}),
    };
    mutate(
        sim,
        Method::POST,
        &format!("{base}/tags/{tag}/members"),
        Some(&body),
    )
    .await
}
