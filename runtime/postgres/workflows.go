package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/workflow"
)

// workflowCache holds parsed definitions by name and version. Versions are
// immutable, so an entry never goes stale and needs no invalidation.
type workflowCache struct {
	mu sync.RWMutex
	m  map[workflowKey]*oms.Workflow
}

type workflowKey struct {
	name    string
	version int
}

// maxRunsCached bounds the entity → workflow map; when full, it starts over.
const maxRunsCached = 200_000

// runs remembers which workflow version an order or fulfilment runs (fixed
// for its life), so the engine's own notifications that no rule listens to
// (order.allocated, fulfilment.created, *.status_changed) cost no query.
type runs struct {
	mu sync.Mutex
	m  map[string]workflowKey
}

func (r *runs) get(entity string) (workflowKey, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok := r.m[entity]
	return k, ok
}

func (r *runs) put(k workflowKey, entities ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil || len(r.m)+len(entities) > maxRunsCached {
		r.m = make(map[string]workflowKey, 1024)
	}
	for _, e := range entities {
		r.m[e] = k
	}
}

// definition is what the definition column holds: the workflow without name, version and time.
func definition(w *oms.Workflow) ([]byte, error) {
	c := *w
	c.Name, c.Version, c.CreatedAt = "", 0, nil
	return json.Marshal(&c)
}

func scanWorkflow(row pgx.Row) (*oms.Workflow, error) {
	var (
		w   oms.Workflow
		def []byte
	)
	var name string
	var version int
	w.CreatedAt = new(time.Time)
	if err := row.Scan(&name, &version, &def, w.CreatedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(def, &w); err != nil {
		return nil, fmt.Errorf("decode workflow %s v%d: %w", name, version, err)
	}
	w.Name, w.Version = name, version
	return &w, nil
}

// workflow returns a version from the cache or the database.
func (s *Store) workflow(ctx context.Context, q pgx.Tx, name string, version int) (*oms.Workflow, error) {
	k := workflowKey{name, version}
	s.workflows.mu.RLock()
	w := s.workflows.m[k]
	s.workflows.mu.RUnlock()
	if w != nil {
		return w, nil
	}
	const query = `SELECT name, version, definition, created_at FROM workflows WHERE name = $1 AND version = $2`
	var row pgx.Row
	if q != nil {
		row = q.QueryRow(ctx, query, name, version)
	} else {
		row = s.pool.QueryRow(ctx, query, name, version)
	}
	w, err := scanWorkflow(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, oms.Errorf(oms.ENOTFOUND, "version", "workflow %q has no version %d", name, version)
	}
	if err != nil {
		return nil, fmt.Errorf("load workflow %s v%d: %w", name, version, err)
	}
	s.workflows.mu.Lock()
	if s.workflows.m == nil {
		s.workflows.m = map[workflowKey]*oms.Workflow{}
	}
	s.workflows.m[k] = w
	s.workflows.mu.Unlock()
	return w, nil
}

// PutWorkflow implements oms.WorkflowService.
func (s *Store) PutWorkflow(ctx context.Context, w *oms.Workflow) (*oms.Workflow, bool, error) {
	if err := w.Validate(); err != nil {
		return nil, false, err
	}
	var (
		stored  *oms.Workflow
		created bool
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		stored, created, err = putWorkflow(ctx, tx, w)
		return err
	})
	if err != nil {
		if oms.ErrorCode(err) != oms.EINTERNAL {
			return nil, false, err
		}
		return nil, false, fmt.Errorf("put workflow %s: %w", w.Name, err)
	}
	return stored, created, nil
}

func putWorkflow(ctx context.Context, tx pgx.Tx, w *oms.Workflow) (*oms.Workflow, bool, error) {
	// One writer per account at a time: versions are numbered without gaps and
	// the one-workflow-per-delivery-type check cannot race.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7413003)`); err != nil {
		return nil, false, err
	}
	var other string
	err := tx.QueryRow(ctx, `SELECT name FROM workflows WHERE delivery_type = $1 AND name <> $2 LIMIT 1`,
		w.AppliesTo.DeliveryType, w.Name).Scan(&other)
	if err == nil {
		return nil, false, oms.Errorf(oms.ECONFLICT, "appliesTo.deliveryType",
			"%s orders already run workflow %q: PUT /v1/workflows/%s to change it", w.AppliesTo.DeliveryType, other, other)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, err
	}
	latest, err := scanWorkflow(tx.QueryRow(ctx, `SELECT name, version, definition, created_at FROM workflows
		WHERE name = $1 ORDER BY version DESC LIMIT 1`, w.Name))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		latest = nil
	case err != nil:
		return nil, false, err
	case latest.AppliesTo.DeliveryType != w.AppliesTo.DeliveryType:
		return nil, false, oms.Errorf(oms.ECONFLICT, "appliesTo.deliveryType",
			"workflow %q runs %s orders and cannot change to %s: give the new flow another name", w.Name,
			latest.AppliesTo.DeliveryType, w.AppliesTo.DeliveryType)
	case sameDefinition(latest, w):
		return latest, false, nil
	}
	version := 1
	if latest != nil {
		version = latest.Version + 1
	}
	if version > oms.MaxWorkflowVersions {
		return nil, false, oms.Errorf(oms.ECONFLICT, "name", "workflow %q has %d versions, the most kept: give the new flow another name",
			w.Name, oms.MaxWorkflowVersions)
	}
	def, err := definition(w)
	if err != nil {
		return nil, false, err
	}
	stored, err := scanWorkflow(tx.QueryRow(ctx, `INSERT INTO workflows (name, version, delivery_type, definition)
		VALUES ($1, $2, $3, $4) RETURNING name, version, definition, created_at`, w.Name, version, w.AppliesTo.DeliveryType, def))
	if err != nil {
		return nil, false, err
	}
	return stored, true, nil
}

func sameDefinition(a, b *oms.Workflow) bool {
	ca, cb := *a, *b
	ca.Version, ca.CreatedAt, cb.Version, cb.CreatedAt = 0, nil, 0, nil
	// Compare through JSON: nil and empty lists mean the same.
	ja, _ := json.Marshal(&ca)
	jb, _ := json.Marshal(&cb)
	var va, vb any
	_ = json.Unmarshal(ja, &va)
	_ = json.Unmarshal(jb, &vb)
	return reflect.DeepEqual(va, vb)
}

// Workflow implements oms.WorkflowService.
func (s *Store) Workflow(ctx context.Context, name string, version int) (*oms.Workflow, error) {
	if err := oms.ValidateWorkflowName("name", name); err != nil {
		return nil, oms.Errorf(oms.ENOTFOUND, "name", "workflow %q not found", name)
	}
	if version < 0 {
		return nil, oms.Invalid("version", "must be 1 or more")
	}
	if version > 0 {
		return s.workflow(ctx, nil, name, version)
	}
	w, err := scanWorkflow(s.pool.QueryRow(ctx, `SELECT name, version, definition, created_at FROM workflows
		WHERE name = $1 ORDER BY version DESC LIMIT 1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, oms.Errorf(oms.ENOTFOUND, "name", "workflow %q not found", name)
	}
	if err != nil {
		return nil, fmt.Errorf("get workflow %s: %w", name, err)
	}
	return w, nil
}

// Workflows implements oms.WorkflowService.
func (s *Store) Workflows(ctx context.Context) ([]*oms.Workflow, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (name) name, version, definition, created_at FROM workflows
		ORDER BY name, version DESC`)
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", err)
	}
	ws, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*oms.Workflow, error) { return scanWorkflow(r) })
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", err)
	}
	return ws, nil
}

// installDefaultWorkflows gives an account the shipped workflows for the
// delivery types it has none for. It runs after every account migration;
// an account's own versions are never replaced.
func installDefaultWorkflows(ctx context.Context, tx pgx.Tx) error {
	defaults, err := workflow.Defaults()
	if err != nil {
		return err
	}
	for _, w := range defaults {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM workflows WHERE delivery_type = $1)`,
			w.AppliesTo.DeliveryType).Scan(&exists); err != nil {
			return err
		}
		if exists {
			continue
		}
		if _, _, err := putWorkflow(ctx, tx, w); err != nil {
			return fmt.Errorf("install default workflow %s: %w", w.Name, err)
		}
	}
	return nil
}
