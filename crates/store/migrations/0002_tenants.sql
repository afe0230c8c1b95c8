-- One row per authorizing corp of a suite (a 代开发 app instance). The permanent code is the app's
-- secret for `gettoken`; it is stored sealed and only while the tenant is not revoked.
create table tenants (
    id                        bigint      generated always as identity primary key,
    suite_id                  text        not null check (suite_id <> ''),
    corp_id                   text        not null check (corp_id <> ''),
    corp_name                 text,
    agent_id                  bigint,
    status                    text        not null
                              check (status in ('pending', 'active', 'suspended', 'revoked')),

    permanent_code_ciphertext bytea,
    permanent_code_nonce      bytea,
    permanent_code_key_id     text,
    permanent_code_updated_at timestamptz,
    -- WeCom TimeStamp of the event whose exchange produced the stored code (create_auth or
    -- reset_permanent_code): an older exchange never replaces a newer code
    permanent_code_event_time timestamptz,

    -- get_auth_info answer (dealer_corp_info, auth_corp_info, auth_info); never holds a secret
    auth_info                 jsonb,
    -- `State` of the authorization QR, if it had one
    state                     text,
    -- WeCom TimeStamp of the newest lifecycle event applied (create_auth, change_auth,
    -- cancel_auth): events processed out of order never undo a newer one
    last_event_time           timestamptz,

    created_at                timestamptz not null default now(),
    updated_at                timestamptz not null default now(),
    activated_at              timestamptz,
    revoked_at                timestamptz,

    constraint tenants_suite_corp_key unique (suite_id, corp_id),
    constraint tenants_permanent_code_complete check (
        num_nulls(permanent_code_ciphertext, permanent_code_nonce, permanent_code_key_id,
                  permanent_code_updated_at) in (0, 4)),
    -- an active or suspended tenant can be called; a revoked one has no secret left
    constraint tenants_secret_matches_status check (
        case status
            when 'active'    then permanent_code_ciphertext is not null
            when 'suspended' then permanent_code_ciphertext is not null
            when 'revoked'   then permanent_code_ciphertext is null and revoked_at is not null
            else true
        end)
);

create index tenants_status on tenants (status);
