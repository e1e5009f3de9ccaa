-- An item's counter slots folded into one row while nobody writes them.
--
-- Every donation change adds to one of 16 random slots of its item (0001), so that
-- concurrent writers on one item do not queue on one row (docs/decisions.md, 2).
-- Every read of a total sums the item's slot rows: the directory's progress (every
-- active campaign's items for order=progress), the old listing's items (up to 500
-- campaigns), the partner's campaign reads and the campaign pages. Migration 0010
-- created all 16 rows with the item, so every read summed 16 rows per item, most of
-- them written long ago. Measured on the load fixture after a 1000-user run (620
-- campaigns, 1,743 items, 27,888 slot rows, 2026-12-04, as the API role): the
-- directory ordered by progress took 16.5/11.2/10.4 ms with 16 rows per item and
-- 7.2/4.5/4.8 ms with the same totals in one row per item.
--
-- So the writers keep their 16 slots, and the worker folds them back, every few
-- seconds (`compact_item_totals`, worker/totals.py): the rows of slots 1-15 are
-- deleted and their sums added to slot 0 in one statement, which keeps every total
-- exact at every moment (a reader sees the rows before or after, never between).
-- It never makes a writer wait for long:
-- * it takes the slot rows with FOR UPDATE SKIP LOCKED: a slot a donation is
--   writing is left for the next round;
-- * slot 0 may be held by a donation: `lock_timeout` (100 ms) gives up the whole
--   round instead of waiting, so a donation that holds slot 0 and then wants a slot
--   the round took (two donations to one item in one transaction) waits at most
--   that long, and a deadlock between them cannot last until deadlock_timeout;
-- * one round at a time across workers (a transaction-scoped advisory lock).
-- A donation whose slot row was just deleted inserts it again (ON CONFLICT sees the
-- row gone and inserts: PostgreSQL retries the insertion).
--
-- A new item gets slot 0 only (its other slots appear with the donations that draw
-- them); existing items keep their rows until the first rounds fold them.

CREATE INDEX item_total_slot_spread_idx ON item_total_slot (item_id) WHERE slot <> 0;

CREATE OR REPLACE FUNCTION campaign_item_create_slots() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO item_total_slot (tenant_id, item_id, slot)
    SELECT n.tenant_id, n.id, 0
    FROM new_items n
    ORDER BY n.id
    ON CONFLICT (item_id, slot) DO NOTHING;
    RETURN NULL;
END
$$;

-- Folds the slots of at most `max_items` items; returns how many items it folded
-- (0 when another round is running or slot 0 of one of them stayed locked).
CREATE FUNCTION compact_item_totals(max_items integer) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    SET lock_timeout = '100ms'  -- for the function's statements only
    AS $$
DECLARE
    folded integer;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('compact_item_totals')) THEN
        RETURN 0;
    END IF;
    BEGIN
        -- The sums are of what the DELETE removed (RETURNING), so they are exact
        -- whatever happened to a row between the statement's snapshot and its lock.
        -- The rows are found by key (the items through the partial index, their
        -- slots through the primary key): joined to a CTE instead, a plan made
        -- while the table was small rescanned the CTE for every row of the table
        -- and a round of 1,000 items ran past the worker's 10 s timeout, holding
        -- the slots' locks (found in a 1000-user run, 2026-12-04).
        WITH moved AS (
            DELETE FROM item_total_slot s
            USING (
                SELECT x.item_id, x.slot
                FROM item_total_slot x
                WHERE x.item_id = ANY (ARRAY(
                          SELECT DISTINCT item_id FROM item_total_slot
                          WHERE slot <> 0 LIMIT max_items))
                  AND x.slot <> 0
                FOR UPDATE SKIP LOCKED
            ) l
            WHERE s.item_id = l.item_id AND s.slot = l.slot
            RETURNING s.tenant_id, s.item_id,
                      s.pending_quantity, s.pending_count,
                      s.confirmed_quantity, s.confirmed_count,
                      s.delivered_quantity, s.delivered_count,
                      s.cancelled_quantity, s.cancelled_count
        )
        INSERT INTO item_total_slot AS t (
            tenant_id, item_id, slot,
            pending_quantity, pending_count, confirmed_quantity, confirmed_count,
            delivered_quantity, delivered_count, cancelled_quantity, cancelled_count)
        SELECT tenant_id, item_id, 0,
               sum(pending_quantity), sum(pending_count),
               sum(confirmed_quantity), sum(confirmed_count),
               sum(delivered_quantity), sum(delivered_count),
               sum(cancelled_quantity), sum(cancelled_count)
        FROM moved
        GROUP BY tenant_id, item_id
        ON CONFLICT (item_id, slot) DO UPDATE SET
            pending_quantity = t.pending_quantity + EXCLUDED.pending_quantity,
            pending_count = t.pending_count + EXCLUDED.pending_count,
            confirmed_quantity = t.confirmed_quantity + EXCLUDED.confirmed_quantity,
            confirmed_count = t.confirmed_count + EXCLUDED.confirmed_count,
            delivered_quantity = t.delivered_quantity + EXCLUDED.delivered_quantity,
            delivered_count = t.delivered_count + EXCLUDED.delivered_count,
            cancelled_quantity = t.cancelled_quantity + EXCLUDED.cancelled_quantity,
            cancelled_count = t.cancelled_count + EXCLUDED.cancelled_count;
        GET DIAGNOSTICS folded = ROW_COUNT;
    EXCEPTION WHEN lock_not_available THEN
        -- Slot 0 of an item stayed locked past lock_timeout: nothing of this round
        -- happened (the block's subtransaction rolled back); the next one retries.
        RETURN 0;
    END;
    RETURN folded;
END
$$;

REVOKE ALL ON FUNCTION compact_item_totals(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION compact_item_totals(integer) TO conectades_app;
