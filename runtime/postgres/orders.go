package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	oms "github.com/omscloud/omscloud/runtime"
)

const orderColumns = `o.id::text, o.ref, o.status, o.items, o.delivery, COALESCE(l.ref, ''), o.workflow, o.workflow_version,
	o.created_at, o.updated_at`

// scanOrder scans orderColumns followed by any extra columns into extra.
func scanOrder(row pgx.Row, extra ...any) (*oms.Order, error) {
	var o oms.Order
	var items, delivery []byte
	dest := append([]any{&o.ID, &o.Ref, &o.Status, &items, &delivery, &o.Location, &o.Workflow, &o.WorkflowVersion,
		&o.CreatedAt, &o.UpdatedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(items, &o.Items); err != nil {
		return nil, fmt.Errorf("decode items: %w", err)
	}
	if err := json.Unmarshal(delivery, &o.Delivery); err != nil {
		return nil, fmt.Errorf("decode delivery: %w", err)
	}
	return &o, nil
}

// validateIdempotencyKey checks the Idempotency-Key header value.
func validateIdempotencyKey(k string) error {
	if k == "" {
		return oms.Invalid("Idempotency-Key", "header required: a unique value per order, reused only to retry the same request")
	}
	if len(k) > 200 {
		return oms.Invalid("Idempotency-Key", "at most 200 characters")
	}
	for _, c := range k {
		if c < 0x21 || c > 0x7e {
			return oms.Invalid("Idempotency-Key", "printable ASCII without spaces only")
		}
	}
	return nil
}

// CreateOrder implements oms.OrderService.
func (s *Store) CreateOrder(ctx context.Context, key string, r *oms.OrderRequest) (*oms.Order, bool, error) {
	if err := validateIdempotencyKey(key); err != nil {
		return nil, false, err
	}
	if err := r.Validate(); err != nil {
		return nil, false, err
	}
	canonical, err := json.Marshal(r)
	if err != nil {
		return nil, false, fmt.Errorf("encode order: %w", err)
	}
	hash := sha256.Sum256(canonical)
	items, _ := json.Marshal(r.Items)
	delivery, _ := json.Marshal(r.Delivery)

	order, replayed, err := s.createOrder(ctx, key, hash[:], r, items, delivery)
	if err != nil {
		var oe *oms.Error
		if errors.As(err, &oe) {
			return nil, false, err
		}
		return nil, false, fmt.Errorf("create order: %w", err)
	}
	return order, replayed, nil
}

// insertOrderSQL inserts an order ($1 id, $2 ref, $3 items, $4 delivery, $5 key, $6 request hash) and returns it.
// ON CONFLICT waits for a concurrent insert of the same key to commit; then no row comes back and the committed
// order is replayed. A trigger gives the order the latest version of the workflow for its delivery type.
const insertOrderSQL = `WITH o AS (
		INSERT INTO orders (id, ref, status, items, delivery, idempotency_key, request_hash)
		VALUES ($1, $2, 'CREATED', $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING
		RETURNING *)
	SELECT ` + orderColumns + ` FROM o LEFT JOIN locations l ON l.id = o.location_id`

// createOrder writes the order and its order.created event in one transaction of two round trips: BEGIN, the
// reference checks and the insert go together, then the event and COMMIT. A failed check rolls the insert back; a
// key already used replays what it recorded, which wins over the checks as it did when the replay came first.
func (s *Store) createOrder(ctx context.Context, key string, hash []byte, r *oms.OrderRequest, items, delivery []byte) (*oms.Order, bool, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	// A connection released inside a transaction (an error before COMMIT or ROLLBACK) is closed by the pool.
	defer conn.Release()
	rollback := func(err error) (*oms.Order, bool, error) {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		return nil, false, err
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	checkRefs := queueOrderRefs(b, r)
	b.Queue(insertOrderSQL, newUUID(), r.Ref, items, delivery, key, hash)
	br := conn.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return rollback(err)
	}
	refsErr := checkRefs(br)
	o, err := scanOrder(br.QueryRow())
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	var oe *oms.Error
	if refsErr != nil && !errors.As(refsErr, &oe) {
		return rollback(refsErr)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		o, err := s.replay(ctx, conn, key, hash)
		if err != nil {
			return rollback(err)
		}
		_, err = conn.Exec(ctx, "COMMIT") // nothing was written
		return o, true, err
	}
	if refsErr != nil {
		return rollback(refsErr)
	}
	switch pgCode(err) {
	case "23505":
		return rollback(oms.Errorf(oms.ECONFLICT, "ref", "an order with ref %q already exists", r.Ref))
	case "23502": // workflow IS NULL
		return rollback(oms.Errorf(oms.ECONFLICT, "delivery.type", "no workflow runs %s orders in this account: PUT /v1/workflows/{name} with appliesTo.deliveryType %s",
			r.Delivery.Type, r.Delivery.Type))
	}
	if err != nil {
		return rollback(err)
	}
	data, err := json.Marshal(o)
	if err != nil {
		return rollback(fmt.Errorf("encode event %s: %w", oms.EventOrderCreated, err))
	}
	b = &pgx.Batch{}
	b.Queue(insertEventSQL, newUUID(), "order:"+o.ID, oms.EventOrderCreated, data, oms.MatchingEventPatterns(oms.EventOrderCreated))
	b.Queue("COMMIT")
	br = conn.SendBatch(ctx, b)
	var seq int64
	var at time.Time
	err = br.QueryRow().Scan(&seq, &at)
	if err != nil {
		err = fmt.Errorf("append event %s: %w", oms.EventOrderCreated, err)
	} else {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return rollback(err)
	}
	return o, false, nil
}

// querier is what reads a row: a transaction, or a connection inside one.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// replay returns the order recorded under key, nil if none, or ECONFLICT if
// the key was used for a different request.
func (s *Store) replay(ctx context.Context, q querier, key string, hash []byte) (*oms.Order, error) {
	var stored []byte
	o, err := scanOrder(q.QueryRow(ctx, `SELECT `+orderColumns+`, o.request_hash FROM orders o
		LEFT JOIN locations l ON l.id = o.location_id WHERE o.idempotency_key = $1`, key), &stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(stored, hash) {
		return nil, oms.Errorf(oms.ECONFLICT, "Idempotency-Key", "already used for a different order request (order %s)", o.ID)
	}
	return o, nil
}

// queueOrderRefs queues the checks that reject SKUs no location stocks and a CC location that is not a store, and
// returns what reads their results from the batch: an *oms.Error for a bad reference.
func queueOrderRefs(b *pgx.Batch, r *oms.OrderRequest) func(pgx.BatchResults) error {
	skus := make([]string, len(r.Items))
	for i, it := range r.Items {
		skus[i] = it.SKU
	}
	b.Queue(`SELECT DISTINCT sku FROM stock WHERE sku = ANY($1)`, skus)
	cc := r.Delivery.Type == oms.DeliveryCC
	if cc {
		b.Queue(`SELECT type FROM locations WHERE ref = $1`, r.Delivery.Location)
	}
	return func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		known, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		var bad error
		if len(known) < len(skus) {
			set := make(map[string]bool, len(known))
			for _, k := range known {
				set[k] = true
			}
			for i, sku := range skus {
				if !set[sku] {
					bad = oms.Invalid(fmt.Sprintf("items[%d].sku", i), "unknown SKU %q: no location has a stock record for it", sku)
					break
				}
			}
		}
		if !cc {
			return bad
		}
		var typ string
		err = br.QueryRow().Scan(&typ)
		switch {
		case bad != nil:
			return bad
		case errors.Is(err, pgx.ErrNoRows):
			return oms.Invalid("delivery.location", "unknown location %q", r.Delivery.Location)
		case err != nil:
			return err
		case typ != oms.LocationStore:
			return oms.Invalid("delivery.location", "%q is a %s: click & collect needs a store", r.Delivery.Location, typ)
		}
		return nil
	}
}

// Order implements oms.OrderService.
func (s *Store) Order(ctx context.Context, id string) (*oms.Order, error) {
	if !oms.IsUUID(id) {
		return nil, oms.Errorf(oms.ENOTFOUND, "id", "order %q not found", id)
	}
	o, err := scanOrder(s.pool.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders o
		LEFT JOIN locations l ON l.id = o.location_id WHERE o.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, oms.Errorf(oms.ENOTFOUND, "id", "order %q not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("get order: %w", err)
	}
	if o.Fulfilments, err = s.queryFulfilments(ctx, `f.order_id = $1`, 0, id); err != nil {
		return nil, fmt.Errorf("get order: %w", err)
	}
	return o, nil
}

// Orders implements oms.OrderService: newest first, cursor-paginated.
func (s *Store) Orders(ctx context.Context, f oms.OrderFilter) (*oms.OrderPage, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	before, err := decodeCursor(f.Cursor)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+orderColumns+`, o.seq FROM orders o
		LEFT JOIN locations l ON l.id = o.location_id
		WHERE ($1 = '' OR o.status = $1) AND ($2 = 0 OR o.seq < $2)
		ORDER BY o.seq DESC LIMIT $3`, f.Status, before, f.Limit+1)
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	page := &oms.OrderPage{Orders: []*oms.Order{}}
	var seqs []int64
	for rows.Next() {
		var seq int64
		o, err := scanOrder(rows, &seq)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list orders: %w", err)
		}
		page.Orders = append(page.Orders, o)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	if len(page.Orders) > f.Limit {
		page.Orders = page.Orders[:f.Limit]
		page.NextCursor = encodeCursor(seqs[f.Limit-1])
	}
	return page, nil
}

// CancelOrder implements oms.OrderService; the reservation is released in the same transaction.
func (s *Store) CancelOrder(ctx context.Context, id string) (*oms.Order, error) {
	if !oms.IsUUID(id) {
		return nil, oms.Errorf(oms.ENOTFOUND, "id", "order %q not found", id)
	}
	var order *oms.Order
	released := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM orders WHERE id = $1 FOR UPDATE`, id).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return oms.Errorf(oms.ENOTFOUND, "id", "order %q not found", id)
		}
		if err != nil {
			return err
		}
		if status == oms.StatusCancelled {
			return oms.Errorf(oms.ECONFLICT, "status", "order %s is already cancelled", id)
		}
		var consumed int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM fulfilments WHERE order_id = $1 AND stock = 'consumed'`, id).Scan(&consumed); err != nil {
			return err
		}
		if consumed > 0 {
			return oms.Errorf(oms.ECONFLICT, "status", "order %s is %s: %d of its fulfilments already left their location", id, status, consumed)
		}
		rows, err := tx.Query(ctx, `UPDATE fulfilments SET stock = 'released', status = 'CANCELLED', updated_at = now()
			WHERE order_id = $1 AND stock = 'reserved' RETURNING id::text`, id)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if err := releaseReservations(ctx, tx, ids, false); err != nil {
			return err
		}
		released = len(ids) > 0
		o, err := scanOrder(tx.QueryRow(ctx, `WITH o AS (UPDATE orders SET status = 'CANCELLED', awaiting_stock = false, updated_at = now()
			WHERE id = $1 RETURNING *) SELECT `+orderColumns+` FROM o LEFT JOIN locations l ON l.id = o.location_id`, id))
		if err != nil {
			return err
		}
		order = o
		_, err = appendEvent(ctx, tx, "order:"+id, oms.EventOrderCancelled, map[string]any{
			"previousStatus": status, "releasedReservation": released})
		return err
	})
	if err != nil {
		var oe *oms.Error
		if errors.As(err, &oe) {
			return nil, err
		}
		return nil, fmt.Errorf("cancel order: %w", err)
	}
	if released {
		s.invalidate(ctx)
	}
	return order, nil
}

// encodeCursor makes an opaque page cursor of a sequence number.
func encodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(seq, 10)))
}

// decodeCursor reads a cursor from encodeCursor; "" is 0.
func decodeCursor(c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	var seq int64
	if err == nil {
		seq, err = strconv.ParseInt(string(b), 10, 64)
	}
	if err != nil || seq <= 0 {
		return 0, oms.Invalid("cursor", "not a cursor returned by this API")
	}
	return seq, nil
}
