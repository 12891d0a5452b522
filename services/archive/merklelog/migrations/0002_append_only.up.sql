-- merklelog 0002: the tables refuse what the log never does (see package merklelog).
-- Leaves, nodes and checkpoints are written once: UPDATE, DELETE and TRUNCATE are refused. The
-- state row only moves forward, as the sequencer moves it when it appends: an UPDATE that makes
-- the tree smaller, or changes it without growing it, is refused, and so are DELETE and
-- TRUNCATE. INSERT is not checked here (the sequencer inserts under its lock; the audit checks
-- what was inserted), so appending costs nothing more.
--
-- A role that owns the tables can still disable these triggers (ALTER TABLE ... DISABLE
-- TRIGGER); what catches an owner is the audit and the checkpoints kept on write-once storage
-- (see docs/threat-model.md). Run the services with a role that does not own the tables.

CREATE FUNCTION merklelog_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
        MESSAGE = format('merklelog: %s on %s refused: the log is append-only', TG_OP, TG_TABLE_NAME);
END $$;

CREATE TRIGGER merklelog_leaf_written_once BEFORE UPDATE OR DELETE ON merklelog_leaf
    FOR EACH ROW EXECUTE FUNCTION merklelog_refuse_change();
CREATE TRIGGER merklelog_leaf_no_truncate BEFORE TRUNCATE ON merklelog_leaf
    FOR EACH STATEMENT EXECUTE FUNCTION merklelog_refuse_change();
CREATE TRIGGER merklelog_node_written_once BEFORE UPDATE OR DELETE ON merklelog_node
    FOR EACH ROW EXECUTE FUNCTION merklelog_refuse_change();
CREATE TRIGGER merklelog_node_no_truncate BEFORE TRUNCATE ON merklelog_node
    FOR EACH STATEMENT EXECUTE FUNCTION merklelog_refuse_change();
CREATE TRIGGER merklelog_checkpoint_written_once BEFORE UPDATE OR DELETE ON merklelog_checkpoint
    FOR EACH ROW EXECUTE FUNCTION merklelog_refuse_change();
CREATE TRIGGER merklelog_checkpoint_no_truncate BEFORE TRUNCATE ON merklelog_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION merklelog_refuse_change();

CREATE FUNCTION merklelog_state_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM OLD.id OR NEW.size < OLD.size
        OR (NEW.size = OLD.size AND NEW.compact IS DISTINCT FROM OLD.compact) THEN
        RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
            MESSAGE = format('merklelog: UPDATE of merklelog_state from size %s to %s refused: the log only grows',
                OLD.size, NEW.size);
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER merklelog_state_forward BEFORE UPDATE ON merklelog_state
    FOR EACH ROW EXECUTE FUNCTION merklelog_state_forward();
CREATE TRIGGER merklelog_state_kept BEFORE DELETE ON merklelog_state
    FOR EACH ROW EXECUTE FUNCTION merklelog_refuse_change();
CREATE TRIGGER merklelog_state_no_truncate BEFORE TRUNCATE ON merklelog_state
    FOR EACH STATEMENT EXECUTE FUNCTION merklelog_refuse_change();

-- The sequencer's guard: its UPDATE of the state names the state it computed the new leaves on,
-- and calls this when that is not the stored one any more (the row changed behind its back), so
-- that the appending transaction fails on the server and cannot commit.
CREATE FUNCTION merklelog_stale(expected_size bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
        MESSAGE = format('merklelog: the state is not the one of size %s the leaves were appended to', expected_size);
END $$;
