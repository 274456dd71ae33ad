-- Webhooks: an account's subscriptions of URLs to event types. The secret signs
-- deliveries (HMAC), so it is kept as given; the API never returns it.
CREATE TABLE webhooks (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    url        text NOT NULL,
    events     text[] NOT NULL CHECK (cardinality(events) > 0),
    secret     text NOT NULL,
    enabled    boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (event, webhook), queued in the transaction that wrote the event.
-- attempts counts every attempt made (the log's numbering); round_start is its
-- value when the current round began (a redelivery starts a new round), so
-- backoff and the attempt bound apply per round. claim is the lease of the
-- attempt in flight: while it runs, next_attempt_at is the lease's end.
CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    webhook_id      bigint NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_seq       bigint NOT NULL REFERENCES events (seq),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        int NOT NULL DEFAULT 0,
    round_start     int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claim           uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- At most one delivery of an event to a webhook, however it was queued (subscription or workflow action).
CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (event_seq, webhook_id);
-- The dispatcher's queue: only pending rows, by due time.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- The delivery log, newest first.
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, created_at DESC);
-- Pruning of delivered rows after the retention.
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (updated_at) WHERE status = 'delivered';

CREATE TABLE webhook_attempts (
    delivery_id     uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    n               int NOT NULL,
    attempted_at    timestamptz NOT NULL,
    duration_ms     bigint NOT NULL,
    status_code     int,
    error           text,
    next_attempt_at timestamptz,
    PRIMARY KEY (delivery_id, n)
);
