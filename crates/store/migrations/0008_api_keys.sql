-- The keys the provider's own apps call the provider API with (docs/api.md). Only the SHA-256 of
-- each key's secret part is stored: the key itself is printed once, when it is created.
create table api_keys (
    -- the public part of the key (`dk_<id>_<secret>`), shown in logs and metrics
    id            text        primary key check (id ~ '^[a-z0-9]{12}$'),
    name          text        not null check (name <> ''),
    secret_sha256 bytea       not null check (length(secret_sha256) = 32),
    -- what the key may do: tenants:read, tokens, jssdk, login, directory:read
    scopes        text[]      not null check (cardinality(scopes) > 0),
    -- the suites it may act for; null: every suite
    suites        text[]      check (suites is null or cardinality(suites) > 0),
    -- requests per second it may make (on each API replica); null: the API's default
    rate_limit    integer     check (rate_limit is null or rate_limit > 0),
    created_at    timestamptz not null default now(),
    revoked_at    timestamptz,
    -- when a request last used it, written at most once a minute per API replica
    last_used_at  timestamptz
);

create index api_keys_created_at on api_keys (created_at);
