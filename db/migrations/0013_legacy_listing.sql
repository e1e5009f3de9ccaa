-- The old API's listing (/api/campanhas/listar/) in the old shape.
--
-- The old Django API filtered `categoria` and `localizacao` by integer ids and
-- answered them as ids. Here categories are free slugs and locations free text, so
-- each distinct value gets a stable integer the first time a campaign uses it
-- (trigger below; existing values numbered here in alphabetical order). The ids are
-- global, not per tenant: the same slug is the same category everywhere, as the old
-- system's category table was. Nothing is removed when no campaign uses a value any
-- more, so an id never changes meaning.
CREATE TABLE legacy_category (
    id    integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug  text NOT NULL UNIQUE
);
CREATE TABLE legacy_location (
    id    integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name  text NOT NULL UNIQUE
);

INSERT INTO legacy_category (slug)
SELECT DISTINCT c FROM campaign, unnest(campaign.categories) AS c ORDER BY 1;
INSERT INTO legacy_location (name)
SELECT DISTINCT location FROM campaign WHERE location <> '' ORDER BY 1;

-- Runs as the owner (the API role may not write these tables): a campaign's new
-- categories and location get their ids in the campaign's own transaction.
CREATE FUNCTION legacy_ids_of_campaign() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO legacy_category (slug)
    SELECT DISTINCT c FROM unnest(NEW.categories) AS c
    ON CONFLICT (slug) DO NOTHING;
    IF NEW.location <> '' THEN
        INSERT INTO legacy_location (name) VALUES (NEW.location)
        ON CONFLICT (name) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION legacy_ids_of_campaign() FROM PUBLIC;

CREATE TRIGGER campaign_legacy_ids
AFTER INSERT OR UPDATE OF categories, location ON campaign
FOR EACH ROW EXECUTE FUNCTION legacy_ids_of_campaign();

-- Items of published campaigns of active tenants with their contributed quantity
-- (confirmed + delivered), for a page of campaigns at once.
CREATE VIEW public_campaign_item AS
SELECT i.id,
       i.campaign_id,
       i.name,
       i.unit,
       i.quantity_requested,
       i.created_at,
       coalesce((
           SELECT sum(x.confirmed_quantity + x.delivered_quantity)
           FROM item_total_slot x
           WHERE x.item_id = i.id
       ), 0)::bigint AS contributed
FROM campaign_item i
JOIN campaign c ON c.id = i.campaign_id
JOIN tenant t ON t.id = c.tenant_id
WHERE c.status = 'published' AND t.status = 'active';

REVOKE ALL ON legacy_category, legacy_location, public_campaign_item FROM PUBLIC;
GRANT SELECT ON legacy_category, legacy_location, public_campaign_item TO conectades_app;
