package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/omstest"
)

// trickle is a batch whose client sends one line and then waits (a slow upload).
type trickle struct {
	sent    bool
	release <-chan struct{}
	ctx     context.Context
}

func (tr *trickle) Next() (oms.InventoryLine, int, error) {
	if !tr.sent {
		tr.sent = true
		return oms.InventoryLine{SKU: "A", Location: "wh-1", OnHand: 1}, 1, nil
	}
	select {
	case <-tr.release:
		return oms.InventoryLine{}, 0, io.EOF
	case <-tr.ctx.Done():
		return oms.InventoryLine{}, 0, tr.ctx.Err()
	}
}

// TestSlowUploadsDoNotStarveTheAccount: ten inventory uploads of one account trickling at once must not take the
// account's pool: its other requests keep answering. Before, each upload held a pooled connection for as long as
// its client took, and the eleventh request of the account waited for one.
func TestSlowUploadsDoNotStarveTheAccount(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	putLocation(t, s, "wh-1", oms.LocationWarehouse, 52.0, 4.0)
	load(t, s, "sku,location,on_hand\nA,wh-1,5\n")

	release := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	results := make([]error, 10)
	for i := range results {
		wg.Go(func() {
			_, results[i] = s.LoadInventory(ctx, &trickle{release: release, ctx: ctx})
		})
	}
	time.Sleep(500 * time.Millisecond) // every upload has started and is waiting on its client

	for i := range 20 {
		qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
		lv, err := s.Stock(qctx, "wh-1", "A")
		qcancel()
		require.NoError(t, err, "request %d of the account while its uploads trickle", i)
		assert.Equal(t, int64(5), lv.OnHand)
		qctx, qcancel = context.WithTimeout(ctx, 2*time.Second)
		_, err = s.Orders(qctx, oms.OrderFilter{})
		qcancel()
		require.NoError(t, err)
	}
	close(release)
	wg.Wait()
	for i, err := range results {
		assert.NoError(t, err, "upload %d", i)
	}
	lv, err := s.Stock(ctx, "wh-1", "A")
	require.NoError(t, err)
	assert.Equal(t, int64(1), lv.OnHand, "the uploads landed once their clients finished")
}

// TestAbortedUploadChangesNothing: an upload whose client goes away fails with the client's error and applies
// nothing; the account's uploads after it work.
func TestAbortedUploadChangesNothing(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	putLocation(t, s, "wh-1", oms.LocationWarehouse, 52.0, 4.0)
	load(t, s, "sku,location,on_hand\nA,wh-1,5\n")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	_, err := s.LoadInventory(ctx, &trickle{release: make(chan struct{}), ctx: ctx})
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.Canceled), fmt.Sprint(err))
	lv, err := s.Stock(context.Background(), "wh-1", "A")
	require.NoError(t, err)
	assert.Equal(t, int64(5), lv.OnHand)
	load(t, s, "sku,location,on_hand\nA,wh-1,7\n")
}
