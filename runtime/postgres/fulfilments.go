package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	oms "github.com/omscloud/omscloud/runtime"
)

// queryFulfilments lists fulfilments matching where (on alias f), oldest first, at most limit (0: all).
func (s *Store) queryFulfilments(ctx context.Context, where string, limit int, args ...any) ([]*oms.Fulfilment, error) {
	rows, err := s.pool.Query(ctx, `SELECT f.id::text, f.order_id::text, l.ref, f.status, f.items, f.stock, f.created_at,
		f.updated_at, f.seq FROM fulfilments f JOIN locations l ON l.id = f.location_id WHERE `+where+` ORDER BY f.seq
		LIMIT NULLIF($`+strconv.Itoa(len(args)+1)+`::int, 0)`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("read fulfilments: %w", err)
	}
	fs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*oms.Fulfilment, error) {
		var f oms.Fulfilment
		var items []byte
		if err := row.Scan(&f.ID, &f.Order, &f.Location, &f.Status, &items, &f.Stock, &f.CreatedAt, &f.UpdatedAt, &f.Seq); err != nil {
			return nil, err
		}
		return &f, json.Unmarshal(items, &f.Items)
	})
	if err != nil {
		return nil, fmt.Errorf("read fulfilments: %w", err)
	}
	return fs, nil
}

// Fulfilments implements oms.FulfilmentService: a location's queue, oldest first.
func (s *Store) Fulfilments(ctx context.Context, f oms.FulfilmentFilter) (*oms.FulfilmentPage, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	after, err := decodeCursor(f.Cursor)
	if err != nil {
		return nil, err
	}
	fs, err := s.queryFulfilments(ctx, `($1 = '' OR l.ref = $1) AND ($2 = '' OR f.status = $2) AND f.seq > $3`,
		f.Limit+1, f.Location, f.Status, after)
	if err != nil {
		return nil, err
	}
	page := &oms.FulfilmentPage{Fulfilments: fs}
	if len(fs) > f.Limit {
		page.Fulfilments = fs[:f.Limit]
		page.NextCursor = encodeCursor(fs[f.Limit-1].Seq)
	}
	if page.Fulfilments == nil {
		page.Fulfilments = []*oms.Fulfilment{}
	}
	return page, nil
}

// Fulfilment implements oms.FulfilmentService.
func (s *Store) Fulfilment(ctx context.Context, id string) (*oms.Fulfilment, error) {
	if !oms.IsUUID(id) {
		return nil, oms.Errorf(oms.ENOTFOUND, "id", "fulfilment %q not found", id)
	}
	fs, err := s.queryFulfilments(ctx, `f.id = $1`, 1, id)
	if err != nil {
		return nil, err
	}
	if len(fs) == 0 {
		return nil, oms.Errorf(oms.ENOTFOUND, "id", "fulfilment %q not found", id)
	}
	return fs[0], nil
}
