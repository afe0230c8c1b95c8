-- Messages each consumer has applied, written in the same transaction as the effect: a redelivered
-- or re-pushed message finds its (consumer, dedupe_key) here and is acknowledged without effect.
create table inbox (
    consumer     text        not null check (consumer <> ''),
    dedupe_key   text        not null check (dedupe_key <> ''),
    processed_at timestamptz not null default now(),

    primary key (consumer, dedupe_key)
);

-- pruning old entries
create index inbox_processed_at on inbox (processed_at);
