-- The client directories contact-sync mirrors (docs/schema.md, docs/contact-sync.md).
--
-- Every entity row carries `observed_at`: the database time at which the WeCom read that produced
-- it started. A write only replaces a row observed earlier, so a slow read never overwrites a
-- newer one, whatever order replicas commit in. `seen_run` is the last full sync that saw the
-- row (mark and sweep); `deleted_at` marks a tombstone (WeCom said the entity is gone) kept until
-- a full sync confirms it. `wecom_time` is the WeCom time of the newest change event applied.
-- A department's leaders are not stored on it: they are its members whose membership has
-- `is_leader` (WeCom keeps the two in step, and a member's change does not re-announce the
-- department).

create table directory_departments (
    tenant_id    bigint      not null references tenants (id) on delete cascade,
    department_id bigint     not null check (department_id > 0),
    name         text,
    name_en      text,
    parent_id    bigint,
    sort_order   bigint,
    observed_at  timestamptz not null,
    wecom_time   timestamptz,
    deleted_at   timestamptz,
    seen_run     bigint,
    content_hash bytea,
    updated_at   timestamptz not null default now(),

    primary key (tenant_id, department_id)
);

create table directory_users (
    tenant_id         bigint      not null references tenants (id) on delete cascade,
    user_id           text        not null check (user_id <> ''),
    open_userid       text,
    name              text,
    position          text,
    mobile            text,
    gender            text,
    email             text,
    biz_mail          text,
    avatar            text,
    thumb_avatar      text,
    telephone         text,
    alias             text,
    address           text,
    qr_code           text,
    main_department   bigint,
    direct_leaders    jsonb,
    status            integer,
    extattr           jsonb,
    external_position text,
    external_profile  jsonb,
    observed_at       timestamptz not null,
    wecom_time        timestamptz,
    deleted_at        timestamptz,
    seen_run          bigint,
    content_hash      bytea,
    updated_at        timestamptz not null default now(),

    primary key (tenant_id, user_id)
);

-- A member's departments, in WeCom's order (`position`), with the order inside each department
-- and the leader flag. Replaced as a whole with its user row.
create table directory_user_departments (
    tenant_id     bigint  not null,
    user_id       text    not null,
    department_id bigint  not null,
    position      integer not null,
    sort_order    bigint,
    is_leader     boolean,

    primary key (tenant_id, user_id, department_id),
    foreign key (tenant_id, user_id) references directory_users (tenant_id, user_id) on delete cascade
);

create index directory_user_departments_by_department
    on directory_user_departments (tenant_id, department_id);

create table directory_tags (
    tenant_id    bigint      not null references tenants (id) on delete cascade,
    tag_id       bigint      not null check (tag_id > 0),
    name         text,
    observed_at  timestamptz not null,
    wecom_time   timestamptz,
    deleted_at   timestamptz,
    seen_run     bigint,
    content_hash bytea,
    updated_at   timestamptz not null default now(),

    primary key (tenant_id, tag_id)
);

-- A tag's members and departments as `tag/get` answers them. Replaced as a whole with the tag row.
create table directory_tag_users (
    tenant_id bigint not null,
    tag_id    bigint not null,
    user_id   text   not null,

    primary key (tenant_id, tag_id, user_id),
    foreign key (tenant_id, tag_id) references directory_tags (tenant_id, tag_id) on delete cascade
);

create table directory_tag_departments (
    tenant_id     bigint not null,
    tag_id        bigint not null,
    department_id bigint not null,

    primary key (tenant_id, tag_id, department_id),
    foreign key (tenant_id, tag_id) references directory_tags (tenant_id, tag_id) on delete cascade
);

-- One row per full sync. At most one `running` run per tenant; its owner keeps `lease_until` in
-- the future while it works, and another replica takes over a run whose lease lapsed, resuming
-- from `checkpoint`.
create table sync_runs (
    id               bigint      generated always as identity primary key,
    tenant_id        bigint      not null references tenants (id) on delete cascade,
    reason           text        not null,
    status           text        not null default 'running'
                     check (status in ('running', 'completed', 'failed', 'cancelled')),
    phase            text        not null default 'departments',
    checkpoint       jsonb       not null default '{}',
    owner            text,
    lease_until      timestamptz,
    rerun_requested  boolean     not null default false,
    started_at       timestamptz not null default now(),
    heartbeat_at     timestamptz not null default now(),
    finished_at      timestamptz,
    api_calls        bigint      not null default 0,
    pages            bigint      not null default 0,
    rate_limit_waits bigint      not null default 0,
    departments      bigint      not null default 0,
    users            bigint      not null default 0,
    tags             bigint      not null default 0,
    rows_added       bigint      not null default 0,
    rows_changed     bigint      not null default 0,
    rows_removed     bigint      not null default 0,
    takeovers        integer     not null default 0,
    error            text
);

create unique index sync_runs_one_running on sync_runs (tenant_id) where status = 'running';
create index sync_runs_by_tenant on sync_runs (tenant_id, id desc);

-- When each tenant's directory is next reconciled (a full sync that counts drift).
create table directory_sync (
    tenant_id           bigint      primary key references tenants (id) on delete cascade,
    next_reconcile_at   timestamptz not null,
    last_completed_run  bigint,
    last_completed_at   timestamptz
);

-- Calls made per (corp, WeCom API, minute), shared by every replica so that together they stay
-- under WeCom's per-corp, per-API frequency limit. Old windows are pruned by the sync workers.
create table api_quota (
    corp_id      text        not null,
    api          text        not null,
    window_start timestamptz not null,
    calls        integer     not null default 0,
    -- after a 45009: no replica calls this API for this corp before then
    blocked_until timestamptz,

    primary key (corp_id, api, window_start)
);
