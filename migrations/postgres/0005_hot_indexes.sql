-- Issue 16, every hot query on its index (asserted by tests/store/hot_plans.rs): the user and
-- API-key listings are ordered by (created_at, id). With these indexes they read one
-- organization's rows in that order, instead of finding them by another index and sorting.
CREATE INDEX users_org_created ON users(org_id, created_at, id);
CREATE INDEX api_keys_org_created ON api_keys(org_id, created_at, id);
