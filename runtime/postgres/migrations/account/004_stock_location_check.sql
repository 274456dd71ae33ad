-- stock.location_id was a foreign key, checked once per inserted row: about 2/3 of the CPU of a first
-- inventory load, although the load's merge joins locations and so only ever inserts known ones. The same
-- guarantee, checked once per statement over the inserted rows; locations are never deleted (no API does),
-- and a delete that would orphan stock is refused.
ALTER TABLE stock DROP CONSTRAINT stock_location_id_fkey;

CREATE FUNCTION stock_locations_exist() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_stock n WHERE NOT EXISTS (SELECT 1 FROM locations l WHERE l.id = n.location_id)) THEN
        RAISE EXCEPTION 'stock for a location that does not exist' USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER stock_locations_exist AFTER INSERT ON stock REFERENCING NEW TABLE AS new_stock
    FOR EACH STATEMENT EXECUTE FUNCTION stock_locations_exist();

CREATE FUNCTION locations_keep_stock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM old_locations o JOIN stock s ON s.location_id = o.id) THEN
        RAISE EXCEPTION 'location still has stock' USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER locations_keep_stock AFTER DELETE ON locations REFERENCING OLD TABLE AS old_locations
    FOR EACH STATEMENT EXECUTE FUNCTION locations_keep_stock();
