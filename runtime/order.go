package oms

import (
	"context"
	"fmt"
	"time"
)

// Order statuses the OMS itself sets; workflows add their own (SHIPPED, COLLECTED, ...).
const (
	StatusCreated      = "CREATED"
	StatusAllocated    = "ALLOCATED"
	StatusPendingStock = "PENDING_STOCK"
	StatusCancelled    = "CANCELLED"
)

// Delivery types: home delivery ships from the nearest location holding every
// line; click & collect reserves at the given store.
const (
	DeliveryHD = "HD"
	DeliveryCC = "CC"
)

// MaxOrderLines and MaxLineQty bound an order.
const (
	MaxOrderLines = 200
	MaxLineQty    = 100_000
)

// Item is a SKU and a quantity.
type Item struct {
	SKU string `json:"sku"`
	Qty int64  `json:"qty"`
}

// Address is a delivery address; its coordinates choose the nearest location.
type Address struct {
	Line1    string   `json:"line1,omitempty"`
	City     string   `json:"city,omitempty"`
	Postcode string   `json:"postcode,omitempty"`
	Country  string   `json:"country,omitempty"`
	Lat      *float64 `json:"lat"`
	Lon      *float64 `json:"lon"`
}

// MaxTextLen bounds names and address lines, in bytes.
const MaxTextLen = 200

// Validate checks the address fields (single lines of at most MaxTextLen bytes) and the coordinates; prefix is
// prepended to the field names.
func (a *Address) Validate(prefix string) error {
	for _, f := range []struct{ name, v string }{{"line1", a.Line1}, {"city", a.City}, {"postcode", a.Postcode}, {"country", a.Country}} {
		if err := ValidateName(prefix+f.name, f.v); err != nil {
			return err
		}
	}
	return ValidatePoint(prefix, a.Lat, a.Lon)
}

// ValidateName checks an optional single-line text: no control characters, at most MaxTextLen bytes.
func ValidateName(field, v string) error {
	if len(v) > MaxTextLen {
		return Invalid(field, "at most %d characters", MaxTextLen)
	}
	return CheckLine(field, v)
}

// Delivery says how the order reaches the customer.
type Delivery struct {
	Type     string   `json:"type"`
	Location string   `json:"location,omitempty"`
	Address  *Address `json:"address,omitempty"`
}

// OrderRequest is the body of POST /v1/orders.
type OrderRequest struct {
	Ref      string   `json:"ref"`
	Items    []Item   `json:"items"`
	Delivery Delivery `json:"delivery"`
}

// Validate checks an order request; errors name the JSON path.
func (r *OrderRequest) Validate() error {
	if err := ValidateRef("ref", r.Ref); err != nil {
		return err
	}
	if len(r.Items) == 0 {
		return Invalid("items", "at least one item required")
	}
	if len(r.Items) > MaxOrderLines {
		return Invalid("items", "at most %d items", MaxOrderLines)
	}
	if err := ValidateItems("items", r.Items, MaxLineQty); err != nil {
		return err
	}
	switch r.Delivery.Type {
	case DeliveryCC:
		if err := ValidateRef("delivery.location", r.Delivery.Location); err != nil {
			return err
		}
	case DeliveryHD:
		if r.Delivery.Location != "" {
			return Invalid("delivery.location", "only for click & collect (CC); home delivery ships from the nearest location")
		}
		if r.Delivery.Address == nil {
			return Invalid("delivery.address", "required for home delivery (HD)")
		}
		if err := r.Delivery.Address.Validate("delivery.address."); err != nil {
			return err
		}
	case "":
		return Invalid("delivery.type", "required: %q or %q", DeliveryHD, DeliveryCC)
	default:
		return Invalid("delivery.type", "must be %q or %q", DeliveryHD, DeliveryCC)
	}
	return nil
}

// ValidateItems checks SKUs (valid, not repeated) and quantities (1..maxQty).
func ValidateItems(field string, items []Item, maxQty int64) error {
	seen := make(map[string]int, len(items))
	for i, it := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := ValidateRef(f+".sku", it.SKU); err != nil {
			return err
		}
		if j, dup := seen[it.SKU]; dup {
			return Invalid(f+".sku", "duplicate of %s[%d]: give each SKU once with its total quantity", field, j)
		}
		seen[it.SKU] = i
		if it.Qty <= 0 {
			return Invalid(f+".qty", "must be greater than 0")
		}
		if it.Qty > maxQty {
			return Invalid(f+".qty", "must be at most %d", maxQty)
		}
	}
	return nil
}

// Order is a customer order.
type Order struct {
	ID       string   `json:"id"`
	Ref      string   `json:"ref"`
	Status   string   `json:"status"`
	Items    []Item   `json:"items"`
	Delivery Delivery `json:"delivery"`
	Location string   `json:"allocatedLocation,omitempty"` // the one location of a not-split allocation
	// Workflow and WorkflowVersion are the definition this order runs, fixed at creation.
	Workflow        string        `json:"workflow,omitempty"`
	WorkflowVersion int           `json:"workflowVersion,omitempty"`
	Fulfilments     []*Fulfilment `json:"fulfilments,omitempty"` // on single-order reads
	CreatedAt       time.Time     `json:"createdAt"`
	UpdatedAt       time.Time     `json:"updatedAt"`
}

// OrderFilter selects orders for listing; Cursor is opaque (from OrderPage.NextCursor).
type OrderFilter struct {
	Status string
	Limit  int
	Cursor string
}

// MaxListLimit bounds a page.
const MaxListLimit = 200

// Validate checks the filter and sets the default limit.
func (f *OrderFilter) Validate() error {
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

// OrderPage is one page of orders.
type OrderPage struct {
	Orders     []*Order `json:"orders"`
	NextCursor string   `json:"nextCursor,omitempty"`
}

// OrderService is the per-account order book.
type OrderService interface {
	// CreateOrder records a new order (status CREATED) and its order.created event.
	// The same idempotency key with the same request returns the existing order
	// (replayed=true); with another request it is an ECONFLICT.
	CreateOrder(ctx context.Context, idempotencyKey string, r *OrderRequest) (o *Order, replayed bool, err error)
	Order(ctx context.Context, id string) (*Order, error)
	Orders(ctx context.Context, f OrderFilter) (*OrderPage, error)
	// CancelOrder cancels the order and releases its reservation.
	CancelOrder(ctx context.Context, id string) (*Order, error)
}
