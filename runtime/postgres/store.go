package postgres

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	oms "github.com/omscloud/omscloud/runtime"
)

// Store implements oms.Store on one account's database. Every query runs on
// the account's own pool, so no query can reach another account's data.
type Store struct {
	account   string
	pool      *pgxpool.Pool
	batch     *pgxpool.Pool // inventory batches only (Options.MaxBatchConnsPerAccount)
	cache     oms.Cache
	log       *slog.Logger
	workflows workflowCache
	runs      runs
	relay     relayCursor
}

var _ oms.Store = (*Store)(nil)

func (s *Store) close() {
	s.pool.Close()
	if s.batch != nil {
		s.batch.Close()
	}
}

// Pool exposes the account's pool to tests and tools in this module.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// invalidate drops the account's cached answers after stock changed.
func (s *Store) invalidate(ctx context.Context) {
	if s.cache != nil {
		s.cache.Invalidate(ctx, s.account)
	}
}
