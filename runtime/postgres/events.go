package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	oms "github.com/omscloud/omscloud/runtime"
)

// appendEvent writes an event to the log and queues it in the outbox, inside
// the caller's transaction: the state change and its event commit together.
func appendEvent(ctx context.Context, tx pgx.Tx, entity, typ string, data any) (*oms.Event, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", typ, err)
	}
	return insertEvent(ctx, tx, newUUID(), entity, typ, b)
}

// insertEventSQL writes an event ($1 id, $2 entity, $3 type, $4 data), its
// outbox row and its webhook deliveries ($5: the patterns matching the type).
const insertEventSQL = `WITH e AS (INSERT INTO events (id, entity, type, data) VALUES ($1, $2, $3, $4)
		RETURNING seq, created_at),
	d AS (INSERT INTO webhook_deliveries (webhook_id, event_seq)
		SELECT w.id, e.seq FROM e, webhooks w WHERE w.enabled AND w.events && $5::text[])
	INSERT INTO outbox (event_seq, created_at) SELECT seq, created_at FROM e RETURNING event_seq, created_at`

// insertEvent is appendEvent with the id and the encoded data given.
func insertEvent(ctx context.Context, tx pgx.Tx, id, entity, typ string, b []byte) (*oms.Event, error) {
	e := &oms.Event{ID: id, Entity: entity, Type: typ, Data: b}
	// One round trip for every row: the log entry, its outbox marker and a
	// webhook delivery for each enabled webhook whose events match the type
	// (with no webhooks, that insert reads an empty table).
	if err := tx.QueryRow(ctx, insertEventSQL, e.ID, entity, typ, b, oms.MatchingEventPatterns(typ)).Scan(&e.Seq, &e.At); err != nil {
		return nil, fmt.Errorf("append event %s: %w", typ, err)
	}
	return e, nil
}

// Events implements oms.EventService: it reads the event log.
func (s *Store) Events(ctx context.Context, f oms.EventFilter) ([]*oms.Event, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if id, ok := strings.CutPrefix(f.Entity, "order:"); ok {
		if _, err := s.Order(ctx, id); err != nil {
			return nil, err
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, id::text, entity, type, data, created_at FROM events
		WHERE ($1 = '' OR entity = $1) AND seq > $2 ORDER BY seq LIMIT $3`, f.Entity, f.After, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	events, err := pgx.CollectRows(rows, s.scanEvent)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return events, nil
}

func (s *Store) scanEvent(row pgx.CollectableRow) (*oms.Event, error) {
	e := &oms.Event{Account: s.account}
	var data []byte
	if err := row.Scan(&e.Seq, &e.ID, &e.Entity, &e.Type, &data, &e.At); err != nil {
		return nil, err
	}
	e.Data = data
	return e, nil
}

// PostEvent implements oms.EventService. The event is accepted only if the
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

// relayOutboxSQL reads the oldest unlocked outbox rows ($1 of them) above seq $2, locked, with their events. The
// old form (outbox JOIN events ORDER BY event_seq LIMIT, FOR UPDATE OF outbox) was planned as a merge join that
// walked the events index from the first event ever written: a batch read the whole log (10 ms for 80,000 events,
// and growing). The batch's seqs are locked first and looked up by key (an array, so no plan can join them to the
// whole log).
const relayOutboxSQL = `SELECT e.seq, e.id::text, e.entity, e.type, e.data, e.created_at FROM events e
	WHERE e.seq = ANY(ARRAY(SELECT event_seq FROM outbox WHERE event_seq > $2 ORDER BY event_seq LIMIT $1 FOR UPDATE SKIP LOCKED))
	ORDER BY e.seq`

// relayFullScanEvery is how often the relay reads the outbox from its start rather than above its cursor.
var relayFullScanEvery = time.Second

// relayCursor is where an account's relay reads the outbox from. The rows it deleted stay in the outbox's index
// until vacuum and, while any transaction that began before the delete runs, each costs a visit to the heap: read
// from the start, the batch query took 38% of PostgreSQL's statement time in the bench's order phase (14 ms a
// batch); above the last seq relayed it skips them (6 ms, half the time per order). An event whose transaction commits after later
// ones were relayed lies below the cursor: a read from the start, at least every relayFullScanEvery, finds it.
// Its seq is drawn just before commit on the hot paths (an order's event goes with COMMIT, a workflow's at its
// last flush), yet under omsbench's order load about 1 event in 70 is such a straggler (with the full reads off,
// 796 of 53,000 events stayed in the outbox): the read from the start is what delivers them, within a second.
type relayCursor struct {
	mu       sync.Mutex
	after    int64
	lastFull time.Time
}

// RelayOutbox implements oms.Outbox.
func (s *Store) RelayOutbox(ctx context.Context, limit int, publish func(context.Context, []*oms.Event) error) (int, error) {
	s.relay.mu.Lock()
	defer s.relay.mu.Unlock()
	after := s.relay.after
	started := time.Now()
	if started.Sub(s.relay.lastFull) >= relayFullScanEvery {
		after = 0
	}
	var n int
	var last int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, relayOutboxSQL, limit, after)
		if err != nil {
			return err
		}
		events, err := pgx.CollectRows(rows, s.scanEvent)
		if err != nil || len(events) == 0 {
			return err
		}
		if err := publish(ctx, events); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		seqs := make([]int64, len(events))
		for i, e := range events {
			seqs[i] = e.Seq
		}
		// If this commit fails after the broker confirmed, the events are
		// published again: consumers deduplicate by event id.
		if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE event_seq = ANY($1)`, seqs); err != nil {
			return err
		}
		n, last = len(events), seqs[len(seqs)-1]
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("relay outbox of %s: %w", s.account, err)
	}
	switch {
	case after > 0:
		s.relay.after = max(s.relay.after, last)
	case n > 0:
		// From the start the batch is the oldest rows: the cursor follows them down, past a straggler or below
		// seqs a restore in place took back (its counter restarts at the dump's).
		s.relay.after, s.relay.lastFull = last, started
	default:
		s.relay.lastFull = started
	}
	return n, nil
}

// OutboxLag implements oms.Outbox.
func (s *Store) OutboxLag(ctx context.Context) (time.Duration, error) {
	var secs float64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 FROM outbox`).Scan(&secs); err != nil {
		return 0, fmt.Errorf("outbox lag of %s: %w", s.account, err)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// PruneProcessed implements oms.Outbox.
func (s *Store) PruneProcessed(ctx context.Context, retention time.Duration, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM processed_messages WHERE id IN (
		SELECT id FROM processed_messages WHERE processed_at < now() - make_interval(secs => $1) LIMIT $2)`,
		retention.Seconds(), limit)
	if err != nil {
		return 0, fmt.Errorf("prune processed messages of %s: %w", s.account, err)
	}
	return int(tag.RowsAffected()), nil
}
