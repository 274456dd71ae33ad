// Package peraccount runs one loop per account, for the worker's background
// jobs (the outbox relay, the webhook dispatcher).
package peraccount

import (
	"context"
	"log/slog"
	"sync"
	"time"

	oms "github.com/omscloud/omscloud/runtime"
)

// Run calls loop(ctx, id) in its own goroutine for every account, starting it
// as accounts appear (listed every refresh) and again if it returned because
// the account was dropped and came back. It returns when ctx is done and every
// loop has returned.
func Run(ctx context.Context, accounts oms.AccountService, refresh time.Duration, log *slog.Logger,
	loop func(ctx context.Context, account string)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	running := map[string]bool{}
	t := time.NewTicker(refresh)
	defer t.Stop()
	for {
		list, err := accounts.Accounts(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("list accounts", "err", err)
		}
		mu.Lock()
		for _, a := range list {
			if running[a.ID] {
				continue
			}
			running[a.ID] = true
			wg.Go(func() {
				loop(ctx, a.ID)
				mu.Lock()
				delete(running, a.ID)
				mu.Unlock()
			})
		}
		mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
