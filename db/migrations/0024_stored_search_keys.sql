-- The directory's search and location keys stored on the row instead of computed
-- at every read.
--
-- public_campaign computed search_text = f_fold(title || ' ' || description) and
-- location_key = f_fold(location) in the view, so a search that the planner did
-- not answer from the trigram index (a short page sorted by date: it scans the
-- date index and filters) unaccented and lowered every published campaign's text
-- again. Measured on the load fixture (620 campaigns, 2026-12-03, as the API role,
-- the backend's CPU over 400 runs of the API's own statement): q=escola 5.1-5.8 ms,
-- with order=deadline 4.9 ms, location=recife 1.8 ms; EXPLAIN ANALYZE of the first:
-- 663 rows through the filter, 4 of the 5.6 ms. The folding now happens once per
-- write, as a stored generated column (f_fold is IMMUTABLE), and the trigram index
-- is on the column (same name, same predicate).
--
-- Adding stored columns rewrites the table under an ACCESS EXCLUSIVE lock: a few
-- seconds at 100k campaigns, during which campaign reads and writes wait.

ALTER TABLE campaign
    ADD COLUMN search_text text
        GENERATED ALWAYS AS (f_fold(title || ' ' || description)) STORED,
    ADD COLUMN location_key text GENERATED ALWAYS AS (f_fold(location)) STORED;

DROP INDEX campaign_public_search_idx;
CREATE INDEX campaign_public_search_idx ON campaign USING gin (search_text gin_trgm_ops)
    WHERE status = 'published';

CREATE OR REPLACE VIEW public_campaign AS
SELECT c.id,
       c.tenant_id,
       t.slug AS tenant_slug,
       t.name AS tenant_name,
       c.slug,
       c.title,
       c.subtitle,
       c.description,
       c.image_url,
       c.categories,
       c.location,
       c.contact,
       c.starts_at,
       c.ends_at,
       c.created_at,
       coalesce(c.ends_at, 'infinity'::timestamptz) AS deadline_key,
       c.search_text,
       c.location_key,
       coalesce((
           SELECT avg(least(1::numeric, coalesce(s.contributed, 0)::numeric
                                        / i.quantity_requested))
           FROM campaign_item i
           LEFT JOIN LATERAL (
               SELECT sum(x.confirmed_quantity + x.delivered_quantity) AS contributed
               FROM item_total_slot x
               WHERE x.item_id = i.id
           ) s ON true
           WHERE i.campaign_id = c.id
       ), 0::numeric) AS progress,
       t.listed AS tenant_listed
FROM campaign c
JOIN tenant t ON t.id = c.tenant_id
WHERE c.status = 'published' AND t.status = 'active';
