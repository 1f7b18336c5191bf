-- Issue 16: the opt-in credential cache on PostgreSQL (postgres_credential_cache) is invalidated
-- by LISTEN/NOTIFY. Every row change of the tables behind the five cached lookups notifies
-- channel 'keygate_cache' with what it touched, in the cache's keys (src/store/cache.rs, Evict):
--   c:<hex digest>            credentials.hash
--   a:<hex digest>            api_keys.hash
--   t:<kind>:<hex digest>     login_tokens (kind, hash)
--   u:<id>:<org id>           users
--   o:<id>                    organizations
-- An UPDATE that changes a key column notifies the old and the new. NOTIFY is transactional:
-- delivered when the writing transaction commits (never for a rolled-back one), so every writer
-- is covered: any node, the CLI, an operator's psql. Identical payloads in one transaction are
-- delivered once.
--
-- This migration only defines the trigger functions. NOTIFY has a price: PostgreSQL serializes
-- the commits of notifying transactions (one lock, held through the commit's WAL flush), which
-- caps durable writes near one per fsync. So a deployment that never turns the cache on pays
-- nothing: the triggers (`keygate_cache_notify` on each table) are created by the first node
-- that starts with the setting on (src/store/pg_notify.rs, `install_triggers`), in one
-- transaction whose CREATE TRIGGERs wait for every writer in flight on those tables to commit,
-- so that every later writer notifies. README ("Credential cache") says how to drop them.

CREATE FUNCTION keygate_cache_notify_credentials() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('keygate_cache', 'c:' || encode(OLD.hash, 'hex'));
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.hash IS DISTINCT FROM OLD.hash) THEN
        PERFORM pg_notify('keygate_cache', 'c:' || encode(NEW.hash, 'hex'));
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION keygate_cache_notify_api_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('keygate_cache', 'a:' || encode(OLD.hash, 'hex'));
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.hash IS DISTINCT FROM OLD.hash) THEN
        PERFORM pg_notify('keygate_cache', 'a:' || encode(NEW.hash, 'hex'));
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION keygate_cache_notify_login_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('keygate_cache', 't:' || OLD.kind || ':' || encode(OLD.hash, 'hex'));
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND (NEW.hash, NEW.kind) IS DISTINCT FROM (OLD.hash, OLD.kind)) THEN
        PERFORM pg_notify('keygate_cache', 't:' || NEW.kind || ':' || encode(NEW.hash, 'hex'));
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION keygate_cache_notify_users() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('keygate_cache', 'u:' || OLD.id || ':' || OLD.org_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND (NEW.id, NEW.org_id) IS DISTINCT FROM (OLD.id, OLD.org_id)) THEN
        PERFORM pg_notify('keygate_cache', 'u:' || NEW.id || ':' || NEW.org_id);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION keygate_cache_notify_organizations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('keygate_cache', 'o:' || OLD.id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.id IS DISTINCT FROM OLD.id) THEN
        PERFORM pg_notify('keygate_cache', 'o:' || NEW.id);
    END IF;
    RETURN NULL;
END $$;
