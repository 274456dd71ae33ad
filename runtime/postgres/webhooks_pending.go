package postgres

// TEMPORARY until the webhooks work merges (helper-15): replaced by postgres/webhooks.go.

import (
	"context"

	"github.com/jackc/pgx/v5"
)

func queueDelivery(ctx context.Context, tx pgx.Tx, webhook string, eventSeq int64) (bool, error) {
	return false, nil
}
