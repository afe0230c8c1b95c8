//! Deterministic directories: the same [`SeedSpec`] always gives the same corp.
//!
//! Shapes follow what real corps look like and what breaks sync code: a department tree up to
//! 15 deep, members in one to three departments with a main department, leaders and direct
//! leaders, custom attributes of both kinds, tags holding members and departments.
//! Fast enough that a 100,000-member corp seeds in well under a second in a release build
//! (see docs/wecom-sim.md for the measured figure).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use wecom::api::{ExtAttrItem, ExtText, ExtWeb};
use wecom::ids::{DepartmentId, TagId, UserId};

use super::{Department, Directory, MAX_DEPTH, Member, ROOT_DEPARTMENT, Tag};
use crate::rng::SplitMix64;

/// What to seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedSpec {
    /// Number of members.
    pub users: usize,
    /// Number of departments, root included (default: one per 40 members, at least 1).
    pub departments: Option<usize>,
    /// Number of tags (default: one per 2,000 members, between 2 and 50).
    pub tags: Option<usize>,
    /// The seed.
    pub seed: u64,
}

impl SeedSpec {
    fn department_count(&self) -> usize {
        self.departments
            .unwrap_or(self.users / 40 + 1)
            .clamp(1, 30_000)
    }

    fn tag_count(&self) -> usize {
        self.tags.unwrap_or((self.users / 2000).clamp(2, 50))
    }
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "刚", "桂英", "建华", "晓东", "子涵", "欣怡", "浩然", "雨桐", "思远",
    "嘉怡",
];
const DEPARTMENTS: &[&str] = &[
    "研发中心",
    "产品部",
    "市场部",
    "销售部",
    "客服部",
    "财务部",
    "人力资源部",
    "行政部",
    "法务部",
    "运营部",
    "设计部",
    "测试部",
    "数据部",
    "采购部",
    "物流部",
    "华东区",
    "华南区",
    "华北区",
];
const POSITIONS: &[&str] = &[
    "工程师",
    "高级工程师",
    "产品经理",
    "设计师",
    "销售代表",
    "客服专员",
    "会计",
    "HRBP",
    "行政专员",
    "运营专员",
    "总监",
    "经理",
];
const TAGS: &[&str] = &[
    "管理层",
    "技术骨干",
    "新员工",
    "远程办公",
    "内训讲师",
    "志愿者",
    "项目组",
    "值班",
    "党员",
    "工会",
];
const CITIES: &[&str] = &["广州市", "深圳市", "上海市", "北京市", "杭州市", "成都市"];

/// Builds the directory `spec` describes, with the root department named `corp_name`.
pub fn seed(corp_name: &str, spec: &SeedSpec) -> Directory {
    let mut rng = SplitMix64::new(spec.seed);
    let mut dir = Directory::new(corp_name);
    let depths = seed_departments(&mut dir, &mut rng, spec.department_count());
    let department_ids: Vec<DepartmentId> = ids(1..=depths.len());
    seed_users(&mut dir, &mut rng, spec.users, &department_ids);
    seed_direct_leaders(&mut dir, &mut rng);
    seed_tags(&mut dir, &mut rng, spec.tag_count(), &department_ids);
    dir
}

/// The ids numbered `range` (positive, so every number is one).
fn ids<T: TryFrom<i64>>(range: std::ops::RangeInclusive<usize>) -> Vec<T> {
    range
        .filter_map(|n| i64::try_from(n).ok())
        .filter_map(|n| T::try_from(n).ok())
        .collect()
}

/// Departments 2..=count under random earlier ones, never deeper than WeCom allows.
/// Returns the depth of each department (index 0 = department 1).
fn seed_departments(dir: &mut Directory, rng: &mut SplitMix64, count: usize) -> Vec<usize> {
    let mut depths = vec![1usize];
    let all: Vec<DepartmentId> = ids(1..=count);
    for &id in all.iter().skip(1) {
        // Favour recent departments a little so the tree gets some depth.
        let existing = depths.len();
        let candidate = if rng.chance(0.5) {
            existing - rng.index(existing.min(8))
        } else {
            rng.index(existing) + 1
        };
        let (parent, parent_index) = if depths[candidate - 1] >= MAX_DEPTH {
            (ROOT_DEPARTMENT, 0)
        } else {
            (all[candidate - 1], candidate - 1)
        };
        let depth = depths[parent_index] + 1;
        depths.push(depth);
        let base = rng.pick(DEPARTMENTS);
        dir.insert_department(Department {
            id,
            name: format!("{base}{id}"),
            name_en: Some(format!("Department {id}")),
            parent_id: Some(parent),
            order: rng.below(100_000_000),
        });
    }
    depths
}

fn seed_users(
    dir: &mut Directory,
    rng: &mut SplitMix64,
    count: usize,
    departments: &[DepartmentId],
) {
    for index in 1..=count {
        // `u` and six digits: always a valid userid.
        let Ok(userid) = UserId::parse(format!("u{index:06}")) else {
            continue;
        };
        let name = format!("{}{}", rng.pick(SURNAMES), rng.pick(GIVEN));
        let extra = match rng.below(100) {
            0..=4 => 2,
            5..=19 => 1,
            _ => 0,
        };
        let mut depts = vec![*rng.pick(departments)];
        for _ in 0..extra {
            let dept = *rng.pick(departments);
            if !depts.contains(&dept) {
                depts.push(dept);
            }
        }
        let mut member = Member::new(userid, &name, depts);
        member.orders = member
            .departments
            .iter()
            .map(|_| rng.below(10_000))
            .collect();
        member.leader_in = member
            .departments
            .iter()
            .map(|_| rng.chance(0.04))
            .collect();
        fill_profile(&mut member, rng, index);
        dir.insert_user(member);
    }
}

fn fill_profile(member: &mut Member, rng: &mut SplitMix64, index: usize) {
    let userid = member.userid.clone();
    member.position = Some((*rng.pick(POSITIONS)).to_owned());
    member.mobile = Some(format!("13{:09}", rng.below(1_000_000_000)));
    member.gender = if rng.chance(0.5) { 1 } else { 2 };
    member.email = Some(format!("{userid}@example.com"));
    member.biz_mail = rng
        .chance(0.5)
        .then(|| format!("{userid}@example.wecom.work"));
    member.telephone = rng
        .chance(0.3)
        .then(|| format!("020-{:08}", rng.below(100_000_000)));
    member.alias = rng.chance(0.3).then(|| format!("{userid}-alias"));
    member.address = rng.chance(0.5).then(|| (*rng.pick(CITIES)).to_owned());
    member.status = match rng.below(100) {
        0..=1 => 2,
        2..=3 => 4,
        4 => 5,
        _ => 1,
    };
    member.ext_attrs.push(ExtAttrItem {
        kind: Some(0),
        name: "工号".to_owned(),
        text: Some(ExtText {
            value: format!("E{index:06}"),
        }),
        ..ExtAttrItem::default()
    });
    if rng.chance(0.1) {
        member.ext_attrs.push(ExtAttrItem {
            kind: Some(1),
            name: "主页".to_owned(),
            web: Some(ExtWeb {
                url: format!("https://example.com/~{userid}"),
                title: "个人主页".to_owned(),
            }),
            ..ExtAttrItem::default()
        });
    }
}

/// Gives most members a leader of their main department as direct leader.
fn seed_direct_leaders(dir: &mut Directory, rng: &mut SplitMix64) {
    let mut leaders_by_dept: std::collections::HashMap<DepartmentId, Vec<UserId>> =
        std::collections::HashMap::new();
    for member in dir.users() {
        for (dept, leader) in member.departments.iter().zip(&member.leader_in) {
            if *leader {
                leaders_by_dept
                    .entry(*dept)
                    .or_default()
                    .push(member.userid.clone());
            }
        }
    }
    // Direct leaders are not indexed, so members can be edited in place.
    for member in dir.users.values_mut() {
        let Some(leaders) = leaders_by_dept.get(&member.main_department) else {
            continue;
        };
        let leader = rng.pick(leaders);
        if *leader != member.userid {
            member.direct_leader = vec![leader.clone()];
        }
    }
}

fn seed_tags(
    dir: &mut Directory,
    rng: &mut SplitMix64,
    count: usize,
    departments: &[DepartmentId],
) {
    let userids: Vec<UserId> = dir.users().map(|m| m.userid.clone()).collect();
    for (index, id) in ids::<TagId>(1..=count).into_iter().enumerate() {
        let base = TAGS[index % TAGS.len()];
        let round = index / TAGS.len();
        let name = if round == 0 {
            base.to_owned()
        } else {
            format!("{base}{}", round + 1)
        };
        let mut users = BTreeSet::new();
        if !userids.is_empty() {
            for _ in 0..(5 + userids.len() / 100) {
                users.insert(rng.pick(&userids).clone());
            }
        }
        let parties: BTreeSet<DepartmentId> =
            (0..rng.below(3)).map(|_| *rng.pick(departments)).collect();
        dir.insert_tag(Tag {
            id,
            name,
            users,
            parties,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(users: usize, seed: u64) -> SeedSpec {
        SeedSpec {
            users,
            departments: None,
            tags: None,
            seed,
        }
    }

    #[test]
    fn same_spec_same_directory() {
        let a = seed("Acme", &spec(500, 7));
        let b = seed("Acme", &spec(500, 7));
        let c = seed("Acme", &spec(500, 8));
        let users = |d: &Directory| d.users().cloned().collect::<Vec<_>>();
        assert_eq!(users(&a), users(&b));
        assert_ne!(users(&a), users(&c));
        assert_eq!(
            a.departments().cloned().collect::<Vec<_>>(),
            b.departments().cloned().collect::<Vec<_>>()
        );
    }

    #[test]
    fn shapes_are_realistic_and_consistent() {
        let dir = seed("Acme", &spec(4000, 1));
        let (departments, users, tags) = dir.counts();
        assert_eq!((departments, users, tags), (101, 4000, 2));
        assert!(dir.departments().all(|d| dir.depth(d.id) <= MAX_DEPTH));
        assert!(dir.departments().map(|d| dir.depth(d.id)).max().unwrap() >= 4);
        assert!(dir.users().any(|m| m.departments.len() == 3));
        assert!(dir.users().any(|m| !m.direct_leader.is_empty()));
        assert!(dir.users().any(|m| m.ext_attrs.len() == 2));
        for member in dir.users() {
            assert_eq!(member.departments.len(), member.orders.len());
            assert_eq!(member.departments.len(), member.leader_in.len());
            assert!(member.departments.contains(&member.main_department));
            assert!(
                member
                    .departments
                    .iter()
                    .all(|d| dir.department(*d).is_some())
            );
        }
        let indexed: usize = dir
            .departments()
            .map(|d| dir.members_of(d.id).count())
            .sum();
        let memberships: usize = dir.users().map(|m| m.departments.len()).sum();
        assert_eq!(indexed, memberships);
        assert!(dir.tags().all(|t| !t.users.is_empty()));
    }

    #[test]
    fn tiny_corps_work() {
        let dir = seed("Solo", &spec(0, 1));
        assert_eq!(dir.counts(), (1, 0, 2));
        let dir = seed("Few", &spec(3, 1));
        assert_eq!(dir.counts().1, 3);
    }
}
