-- The cached access token of each tenant (`gettoken` with corpid + permanent code), sealed.
-- token_sha256 lets a failing token be invalidated by value without decrypting anything.
create table corp_tokens (
    suite_id         text        not null,
    corp_id          text        not null,
    token_ciphertext bytea       not null,
    token_nonce      bytea       not null,
    token_key_id     text        not null,
    token_sha256     bytea       not null check (length(token_sha256) = 32),
    expires_at       timestamptz not null,
    refreshed_at     timestamptz not null,

    primary key (suite_id, corp_id),
    constraint corp_tokens_tenant_fkey foreign key (suite_id, corp_id)
        references tenants (suite_id, corp_id) on delete cascade,
    constraint corp_tokens_lifetime check (expires_at > refreshed_at)
);
