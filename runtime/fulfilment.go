package oms

import (
	"context"
	"time"
)

// Fulfilment is the part of an order one location ships or hands over.
type Fulfilment struct {
	ID       string `json:"id"`
	Order    string `json:"order"`
	Location string `json:"location"`
	Status   string `json:"status"`
	Items    []Item `json:"items"`
	// Stock is "reserved", "released" (given back: the fulfilment is no longer
	// active) or "consumed" (the goods left the location).
	Stock     string    `json:"stock"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	Seq       int64     `json:"-"` // creation order, for paging
}

// FulfilmentFilter selects fulfilments: a location's pick list, say.
type FulfilmentFilter struct {
	Location string
	Status   string
	Limit    int
	Cursor   string
}

// Validate checks the filter and sets the default limit.
func (f *FulfilmentFilter) Validate() error {
	if f.Location != "" {
		if err := ValidateRef("location", f.Location); err != nil {
			return err
		}
	}
	if f.Status != "" {
		if err := ValidateStatus("status", f.Status); err != nil {
			return err
		}
	}
	if f.Limit == 0 {
		f.Limit = 50
	}
	if f.Limit < 0 || f.Limit > MaxListLimit {
		return Invalid("limit", "must be between 1 and %d", MaxListLimit)
	}
	return nil
}

// FulfilmentPage is one page of fulfilments, oldest first.
type FulfilmentPage struct {
	Fulfilments []*Fulfilment `json:"fulfilments"`
	NextCursor  string        `json:"nextCursor,omitempty"`
}

// Fulfilment stock states.
const (
	StockReserved = "reserved"
	StockReleased = "released"
	StockConsumed = "consumed"
)

// FulfilmentService reads an account's fulfilments; workflows create and move them.
type FulfilmentService interface {
	Fulfilment(ctx context.Context, id string) (*Fulfilment, error)
	// Fulfilments lists fulfilments oldest first, by location and status.
	Fulfilments(ctx context.Context, f FulfilmentFilter) (*FulfilmentPage, error)
}
