-- Workflows: versioned, immutable definitions; one workflow name per delivery type.
CREATE TABLE workflows (
    name          text NOT NULL,
    version       int NOT NULL CHECK (version > 0),
    delivery_type text NOT NULL CHECK (delivery_type IN ('HD', 'CC')),
    definition    jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
CREATE INDEX workflows_delivery_type ON workflows (delivery_type, version DESC);

-- Statuses now come from workflows (SHIPPED, COLLECTED, ...): only their shape is fixed.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status ~ '^[A-Z][A-Z0-9_]{0,39}$');
-- The definition an order runs is fixed when it is created. Orders from before
-- workflows existed run version 1 of the default for their delivery type.
ALTER TABLE orders ADD COLUMN workflow text, ADD COLUMN workflow_version int,
    -- set while the last allocation found no stock, so arriving stock retries it
    ADD COLUMN awaiting_stock boolean NOT NULL DEFAULT false;
UPDATE orders SET workflow = CASE delivery->>'type' WHEN 'CC' THEN 'click-and-collect' ELSE 'home-delivery' END,
    workflow_version = 1, awaiting_stock = (status = 'PENDING_STOCK');
ALTER TABLE orders ALTER COLUMN workflow SET NOT NULL, ALTER COLUMN workflow_version SET NOT NULL;
CREATE INDEX orders_awaiting_stock ON orders (seq) WHERE awaiting_stock;

-- A fulfilment is the part of an order one location ships or hands over.
-- stock: reserved (holds reservations), released (given back; inactive), consumed (goods left).
CREATE TABLE fulfilments (
    seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id          uuid PRIMARY KEY,
    order_id    uuid NOT NULL REFERENCES orders (id),
    location_id bigint NOT NULL REFERENCES locations (id),
    status      text NOT NULL CHECK (status ~ '^[A-Z][A-Z0-9_]{0,39}$'),
    items       jsonb NOT NULL,
    stock       text NOT NULL DEFAULT 'reserved' CHECK (stock IN ('reserved', 'released', 'consumed')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fulfilments_order ON fulfilments (order_id);

-- Reservations belong to a fulfilment; an allocated order from before gets one.
INSERT INTO fulfilments (id, order_id, location_id, status, items, created_at, updated_at)
    SELECT gen_random_uuid(), o.id, o.location_id, 'CREATED', o.items, o.updated_at, o.updated_at
    FROM orders o WHERE o.location_id IS NOT NULL AND EXISTS (SELECT 1 FROM reservations r WHERE r.order_id = o.id);
ALTER TABLE reservations ADD COLUMN fulfilment_id uuid REFERENCES fulfilments (id);
UPDATE reservations r SET fulfilment_id = f.id FROM fulfilments f WHERE f.order_id = r.order_id;
ALTER TABLE reservations ALTER COLUMN fulfilment_id SET NOT NULL,
    DROP CONSTRAINT reservations_pkey, ADD PRIMARY KEY (fulfilment_id, sku);
CREATE INDEX reservations_order ON reservations (order_id);

-- The release before workflows keeps serving until the blue-green switch, so this schema must take its
-- writes: orders without a workflow get the current one for their delivery type (which is also how new
-- orders get theirs), and reservations without a fulfilment get their order's fulfilment at that location.
-- Until `oms migrate` installs the default workflows (right after the schema
-- migrations), an order names version 1 of the default for its type.
CREATE FUNCTION orders_set_workflow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.workflow IS NULL THEN
        SELECT name, version INTO NEW.workflow, NEW.workflow_version FROM workflows
        WHERE delivery_type = NEW.delivery->>'type' ORDER BY version DESC LIMIT 1;
        IF NEW.workflow IS NULL AND NOT EXISTS (SELECT 1 FROM workflows) THEN
            NEW.workflow := CASE NEW.delivery->>'type' WHEN 'CC' THEN 'click-and-collect' ELSE 'home-delivery' END;
            NEW.workflow_version := 1;
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER orders_set_workflow BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION orders_set_workflow();

-- The previous release's worker sets PENDING_STOCK without awaiting_stock, and
-- its cancel deletes reservations without closing their fulfilments.
CREATE FUNCTION orders_previous_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'PENDING_STOCK' AND OLD.status <> 'PENDING_STOCK' THEN
        NEW.awaiting_stock := true;
    END IF;
    IF NEW.status = 'CANCELLED' AND OLD.status <> 'CANCELLED' THEN
        NEW.awaiting_stock := false;
        UPDATE fulfilments f SET stock = 'released', status = 'CANCELLED', updated_at = now()
        WHERE f.order_id = NEW.id AND f.stock = 'reserved'
          AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.fulfilment_id = f.id);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER orders_previous_release BEFORE UPDATE OF status ON orders FOR EACH ROW
    EXECUTE FUNCTION orders_previous_release();

CREATE FUNCTION reservations_set_fulfilment() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.fulfilment_id IS NULL THEN
        SELECT id INTO NEW.fulfilment_id FROM fulfilments
        WHERE order_id = NEW.order_id AND location_id = NEW.location_id AND stock = 'reserved';
        IF NEW.fulfilment_id IS NULL THEN
            NEW.fulfilment_id := gen_random_uuid();
            INSERT INTO fulfilments (id, order_id, location_id, status, items)
            SELECT NEW.fulfilment_id, o.id, NEW.location_id, 'CREATED', o.items FROM orders o WHERE o.id = NEW.order_id;
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER reservations_set_fulfilment BEFORE INSERT ON reservations FOR EACH ROW EXECUTE FUNCTION reservations_set_fulfilment();
