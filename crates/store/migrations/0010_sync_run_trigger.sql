-- The event that started a sync run (its envelope id), so that a redelivery of that same event
-- (its consumer died while the run was under way) finds its own run and lets it resume, instead
-- of asking for a second full pass. NULL for runs the worker starts itself (resumes,
-- reconciliations, reruns).
alter table sync_runs add column trigger_id uuid;
