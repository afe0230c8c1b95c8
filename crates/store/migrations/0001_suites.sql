-- One row per suite (代开发 template, id `dk…`): the newest suite_ticket WeCom pushed and the
-- cached suite access token. Both are secrets and stored sealed (AES-256-GCM, see docs/schema.md):
-- `*_ciphertext` + `*_nonce` + `*_key_id` are either all set or all null.
create table suites (
    suite_id                 text        primary key check (suite_id <> ''),

    -- newest ticket; replaced only by a push with a strictly newer WeCom TimeStamp
    ticket_ciphertext        bytea,
    ticket_nonce             bytea,
    ticket_key_id            text,
    ticket_wecom_time        timestamptz,
    ticket_received_at       timestamptz,

    -- cached suite_access_token; token_sha256 lets a failing token be invalidated by value
    suite_token_ciphertext   bytea,
    suite_token_nonce        bytea,
    suite_token_key_id       text,
    suite_token_sha256       bytea,
    suite_token_expires_at   timestamptz,
    suite_token_refreshed_at timestamptz,

    created_at               timestamptz not null default now(),
    updated_at               timestamptz not null default now(),

    constraint suites_ticket_complete check (
        num_nulls(ticket_ciphertext, ticket_nonce, ticket_key_id,
                  ticket_wecom_time, ticket_received_at) in (0, 5)),
    constraint suites_suite_token_complete check (
        num_nulls(suite_token_ciphertext, suite_token_nonce, suite_token_key_id,
                  suite_token_sha256, suite_token_expires_at, suite_token_refreshed_at) in (0, 6))
);
