package oms

import (
	"context"
	"fmt"
)

// MaxOnHand bounds a stock quantity; larger values are almost certainly input errors.
const MaxOnHand = 1_000_000_000

// InventoryLine sets the on-hand quantity of a SKU at a location.
type InventoryLine struct {
	SKU      string `json:"sku"`
	Location string `json:"location"`
	OnHand   int64  `json:"onHand"`
}

// Validate checks one line; field names follow the CSV header.
func (l *InventoryLine) Validate() error {
	if err := ValidateRef("sku", l.SKU); err != nil {
		return err
	}
	if err := ValidateRef("location", l.Location); err != nil {
		return err
	}
	if l.OnHand < 0 || l.OnHand > MaxOnHand {
		return Invalid("on_hand", "must be between 0 and %d", MaxOnHand)
	}
	return nil
}

// LineError reports one rejected line of a batch; the rest of the batch still applies.
type LineError struct {
	Line    int    `json:"line"`
	Message string `json:"error"`
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Message) }

// LineReader yields the lines of an inventory batch one at a time, so that a
// batch of millions of lines is never held in memory. Next returns io.EOF at the
// end, a *LineError for a line that must be rejected (reading may continue), or
// another error when the stream itself is unusable (the whole batch fails).
type LineReader interface {
	Next() (InventoryLine, int, error) // the line, its 1-based line number in the input, an error
}

// BatchResult is the outcome of an inventory batch.
type BatchResult struct {
	BatchID  string      `json:"batchId"`
	Accepted int64       `json:"accepted"`
	Rejected []LineError `json:"rejected"`
	// RejectedCount counts every rejected line; Rejected lists at most MaxReportedRejects.
	RejectedCount int64 `json:"rejectedCount"`
}

// MaxReportedRejects caps the rejected lines listed in a BatchResult.
const MaxReportedRejects = 1000

// Reject records a rejected line, keeping the list bounded.
func (r *BatchResult) Reject(line int, msg string) {
	r.RejectedCount++
	if len(r.Rejected) < MaxReportedRejects {
		r.Rejected = append(r.Rejected, LineError{Line: line, Message: msg})
	}
}

// StockLevel is the stock of one SKU at one location.
type StockLevel struct {
	SKU       string `json:"sku"`
	Location  string `json:"location"`
	OnHand    int64  `json:"onHand"`
	Reserved  int64  `json:"reserved"`
	Available int64  `json:"available"`
}

// InventoryService is the per-account inventory.
type InventoryService interface {
	PutLocation(ctx context.Context, l *Location) (created bool, err error)
	// LoadInventory streams a batch into the account's stock: valid lines whose
	// location exists are applied (later lines win), the others are reported.
	LoadInventory(ctx context.Context, r LineReader) (*BatchResult, error)
	Stock(ctx context.Context, location, sku string) (*StockLevel, error)
}
