package oms

import (
	"context"
	"time"
)

// AvailabilityRequest is the body of POST /v1/availability.
type AvailabilityRequest struct {
	Items []Item `json:"items"`
	Near  *Point `json:"near"`
}

// Point is a coordinate pair.
type Point struct {
	Lat *float64 `json:"lat"`
	Lon *float64 `json:"lon"`
}

// Validate checks the request.
func (r *AvailabilityRequest) Validate() error {
	if len(r.Items) == 0 {
		return Invalid("items", "at least one item required")
	}
	if len(r.Items) > MaxOrderLines {
		return Invalid("items", "at most %d items", MaxOrderLines)
	}
	if err := ValidateItems("items", r.Items, MaxOnHand); err != nil {
		return err
	}
	if r.Near == nil {
		return Invalid("near", "required: {\"lat\":..,\"lon\":..}")
	}
	return ValidatePoint("near.", r.Near.Lat, r.Near.Lon)
}

// LineAvailability is one requested line at one location.
type LineAvailability struct {
	SKU       string `json:"sku"`
	Qty       int64  `json:"qty"`
	Available int64  `json:"available"`
}

// AvailabilityOption is one location's answer, nearest first.
type AvailabilityOption struct {
	Location   string             `json:"location"`
	Name       string             `json:"name"`
	Type       string             `json:"type"`
	DistanceKm float64            `json:"distanceKm"`
	Complete   bool               `json:"complete"` // can fulfil every line
	Lines      []LineAvailability `json:"lines"`
}

// Availability is the answer to an AvailabilityRequest.
type Availability struct {
	Options []AvailabilityOption `json:"options"`
}

// AvailabilityService answers where requested items can be sourced.
type AvailabilityService interface {
	Availability(ctx context.Context, r *AvailabilityRequest) (*Availability, error)
	// AvailabilityJSON is Availability encoded as JSON, so a cached answer is
	// served as stored, without decoding and encoding it again.
	AvailabilityJSON(ctx context.Context, r *AvailabilityRequest) ([]byte, error)
}

// Cache holds derived answers (availability) per account. Cache failures are
// misses, never request failures: the cache is not the truth.
type Cache interface {
	// Fetch returns the cached value of key, or computes, caches (for ttl) and
	// returns it. A value computed while an Invalidate ran is not served after it.
	Fetch(ctx context.Context, account, key string, ttl time.Duration, compute func(context.Context) ([]byte, error)) ([]byte, error)
	// Invalidate drops every entry of the account; call it after committing a change they derive from.
	Invalidate(ctx context.Context, account string)
}
