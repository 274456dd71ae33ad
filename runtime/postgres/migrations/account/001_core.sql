CREATE TABLE locations (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ref        text NOT NULL UNIQUE,
    name       text NOT NULL,
    type       text NOT NULL CHECK (type IN ('store', 'warehouse')),
    lat        double precision NOT NULL,
    lon        double precision NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- reserved may exceed on_hand after a stock count lowers on_hand; available
-- is then 0, and no new reservation can be made there.
CREATE TABLE stock (
    sku         text NOT NULL,
    location_id bigint NOT NULL REFERENCES locations (id),
    on_hand     bigint NOT NULL CHECK (on_hand >= 0),
    reserved    bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, location_id)
);

CREATE TABLE orders (
    seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id              uuid PRIMARY KEY,
    ref             text NOT NULL UNIQUE,
    status          text NOT NULL CHECK (status IN ('CREATED', 'ALLOCATED', 'PENDING_STOCK', 'CANCELLED')),
    items           jsonb NOT NULL,
    delivery        jsonb NOT NULL,
    location_id     bigint REFERENCES locations (id),
    idempotency_key text NOT NULL UNIQUE,
    request_hash    bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_status_seq ON orders (status, seq);

CREATE TABLE reservations (
    order_id    uuid NOT NULL REFERENCES orders (id),
    sku         text NOT NULL,
    location_id bigint NOT NULL REFERENCES locations (id),
    qty         bigint NOT NULL CHECK (qty > 0),
    PRIMARY KEY (order_id, sku)
);

-- The event log: every state change and action, in commit-independent order.
CREATE TABLE events (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         uuid NOT NULL UNIQUE,
    entity     text NOT NULL,
    type       text NOT NULL,
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_entity_seq ON events (entity, seq);

-- Events written but not yet published; a row is deleted once the broker confirmed it.
CREATE TABLE outbox (
    event_seq  bigint PRIMARY KEY REFERENCES events (seq),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Messages a consumer has applied, recorded in the same transaction as their
-- effect, so a redelivered message is recognised and skipped.
CREATE TABLE processed_messages (
    id           uuid PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);
