-- stock_locations_exist asked EXISTS of an anti-join over every inserted row: planned for its first row, it probed
-- locations once per row (1M probes, 0.5 s of a 1M-line first load's 4 s in omsbench). The distinct location ids
-- of a batch are a handful: checked once each.
CREATE OR REPLACE FUNCTION stock_locations_exist() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM (SELECT DISTINCT location_id FROM new_stock) n
               WHERE NOT EXISTS (SELECT 1 FROM locations l WHERE l.id = n.location_id)) THEN
        RAISE EXCEPTION 'stock for a location that does not exist' USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
