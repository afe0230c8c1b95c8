-- The JS-SDK tickets of each tenant, sealed like its corp token: the corp's jsapi_ticket (`corp`,
-- signs wx.config) and the app's agent_config ticket (`agent`, signs wx.agentConfig). WeCom allows
-- 400 corp tickets an hour per corp and 100 agent tickets per app, so every replica of every
-- service shares these. A row exists before its first ticket: its lock is what serializes the
-- refreshes (the tokens crate).
create table jsapi_tickets (
    suite_id          text        not null,
    corp_id           text        not null,
    kind              text        not null check (kind in ('corp', 'agent')),
    ticket_ciphertext bytea,
    ticket_nonce      bytea,
    ticket_key_id     text,
    expires_at        timestamptz,
    refreshed_at      timestamptz,

    primary key (suite_id, corp_id, kind),
    constraint jsapi_tickets_tenant_fkey foreign key (suite_id, corp_id)
        references tenants (suite_id, corp_id) on delete cascade,
    constraint jsapi_tickets_complete check (
        num_nulls(ticket_ciphertext, ticket_nonce, ticket_key_id, expires_at, refreshed_at) in (0, 5)),
    constraint jsapi_tickets_lifetime check (expires_at > refreshed_at)
);
