package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

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

// Fulfilments implements oms.WorkflowService: a location's queue, oldest first.
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

// Fulfilment implements oms.WorkflowService.
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

// PostEvent implements oms.WorkflowService. The event is accepted only if the
// entity's workflow has a rule for it in the entity's current status; the
// worker applies it (and logs it as ignored if the status moved on meanwhile).
func (s *Store) PostEvent(ctx context.Context, r *oms.EventRequest) (*oms.Event, bool, error) {
	if err := r.Validate(); err != nil {
		return nil, false, err
	}
	data := []byte(r.Data)
	if len(data) == 0 || string(data) == "null" {
		data = []byte("{}")
	}
	var (
		event    *oms.Event
		replayed bool
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if r.ID != "" {
			e, err := s.replayEvent(ctx, tx, r, data)
			if err != nil || e != nil {
				event, replayed = e, e != nil
				return err
			}
		}
		kind, id, _ := strings.Cut(r.Entity, ":")
		var (
			status, name string
			version      int
			q            = `SELECT status, workflow, workflow_version FROM orders WHERE id = $1`
		)
		if kind == oms.EntityFulfilment {
			q = `SELECT f.status, o.workflow, o.workflow_version FROM fulfilments f JOIN orders o ON o.id = f.order_id WHERE f.id = $1`
		}
		err := tx.QueryRow(ctx, q, id).Scan(&status, &name, &version)
		if errors.Is(err, pgx.ErrNoRows) {
			return oms.Errorf(oms.ENOTFOUND, "entity", "%s %s not found", kind, id)
		}
		if err != nil {
			return err
		}
		wf, err := s.workflow(ctx, tx, name, version)
		if err != nil {
			return err
		}
		if !wf.Handles(r.Type) {
			return oms.Invalid("type", "workflow %s v%d has no rule on %s (it listens to %s)", wf.Name, wf.Version, r.Type,
				strings.Join(postable(wf), ", "))
		}
		if wf.RuleFor(r.Type, status) == nil {
			return oms.Errorf(oms.ECONFLICT, "type", "%s %s is %s: workflow %s v%d handles %s only in status %s",
				kind, id, status, wf.Name, wf.Version, r.Type, strings.Join(statusesFor(wf, r.Type), ", "))
		}
		eventID := r.ID
		if eventID == "" {
			eventID = newUUID()
		}
		event, err = insertEvent(ctx, tx, eventID, r.Entity, r.Type, data)
		if pgCode(err) == "23505" { // the same id posted concurrently: answer what it recorded
			return errRetryReplay
		}
		if event != nil {
			event.Account = s.account
		}
		return err
	})
	if errors.Is(err, errRetryReplay) {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			e, err := s.replayEvent(ctx, tx, r, data)
			event, replayed = e, true
			return err
		})
	}
	if err != nil {
		if oms.ErrorCode(err) != oms.EINTERNAL {
			return nil, false, err
		}
		return nil, false, fmt.Errorf("post event: %w", err)
	}
	return event, replayed, nil
}

var errRetryReplay = errors.New("event id taken concurrently")

// replayEvent returns the event already recorded under r.ID (nil if none), or
// ECONFLICT if that id was used for a different event.
func (s *Store) replayEvent(ctx context.Context, tx pgx.Tx, r *oms.EventRequest, data []byte) (*oms.Event, error) {
	rows, err := tx.Query(ctx, `SELECT seq, id::text, entity, type, data, created_at FROM events WHERE id = $1`, r.ID)
	if err != nil {
		return nil, err
	}
	e, err := pgx.CollectExactlyOneRow(rows, s.scanEvent)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var same bool
	if err := tx.QueryRow(ctx, `SELECT $1::jsonb = $2::jsonb`, []byte(e.Data), data).Scan(&same); err != nil {
		return nil, err
	}
	if e.Entity != r.Entity || e.Type != r.Type || !same {
		return nil, oms.Errorf(oms.ECONFLICT, "id", "already used for another event (a %s on %s)", e.Type, e.Entity)
	}
	return e, nil
}

// postable lists the event types a workflow listens to that clients may post.
func postable(wf *oms.Workflow) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range wf.Rules {
		if !seen[r.On] && !slices.Contains(oms.EngineEventTypes, r.On) {
			seen[r.On] = true
			out = append(out, r.On)
		}
	}
	return out
}

func statusesFor(wf *oms.Workflow, eventType string) []string {
	var out []string
	for _, r := range wf.Rules {
		if r.On == eventType {
			out = append(out, r.When.Status...)
		}
	}
	return out
}
