-- Every AuthCode received (create_auth, reset_permanent_code) and what became of it. An AuthCode is
-- single-use and valid 10 minutes: it is persisted on arrival, exchanged at most once, and its
-- outcome recorded. The row is keyed by the code's sha256; the code itself is kept sealed only
-- while it can still be exchanged (state `received`).
create table auth_codes (
    code_sha256     bytea       primary key check (length(code_sha256) = 32),
    suite_id        text        not null check (suite_id <> ''),
    kind            text        not null check (kind in ('create_auth', 'reset_permanent_code')),
    state           text        not null default 'received'
                                check (state in ('received', 'exchanged', 'failed')),

    code_ciphertext bytea,
    code_nonce      bytea,
    code_key_id     text,

    -- learned from the exchange answer (the events carry no corp id)
    corp_id         text,
    wecom_time      timestamptz,
    received_at     timestamptz not null,
    expires_at      timestamptz not null,
    attempts        integer     not null default 0 check (attempts >= 0),
    last_attempt_at timestamptz,
    last_error      text,
    failure_reason  text,
    exchanged_at    timestamptz,
    failed_at       timestamptz,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),

    constraint auth_codes_code_complete check (
        num_nulls(code_ciphertext, code_nonce, code_key_id) in (0, 3)),
    constraint auth_codes_state_consistent check (
        case state
            when 'received'  then code_ciphertext is not null
            when 'exchanged' then code_ciphertext is null and corp_id is not null
                                  and exchanged_at is not null
            when 'failed'    then code_ciphertext is null and failure_reason is not null
                                  and failed_at is not null
        end)
);

-- codes still waiting for an exchange, oldest deadline first (the expiry sweep)
create index auth_codes_pending on auth_codes (expires_at) where state = 'received';
