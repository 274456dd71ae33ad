-- A location's fulfilments by status, oldest first: the pick list GET /v1/fulfilments serves.
CREATE INDEX fulfilments_location_status ON fulfilments (location_id, status, seq);
