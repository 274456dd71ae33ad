package oms

import (
	"context"
	"regexp"
	"time"
)

// accountIDPattern keeps ids safe to map onto database and role identifiers:
// lowercase, starting with a letter, 3–31 characters, no underscores (so the
// '-' → '_' mapping used for identifiers cannot collide).
var accountIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{2,30}$`)

// Account is a tenant. Its data lives in its own database.
type Account struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Cell is the database server holding the account's database (postgres.Cells); "" on create means the
	// environment's default cell.
	Cell      string    `json:"cell,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// Validate checks the id and name of a new account.
func (a *Account) Validate() error {
	if err := ValidateAccountID(a.ID); err != nil {
		return err
	}
	if a.Name == "" {
		return Invalid("name", "required")
	}
	if err := ValidateName("name", a.Name); err != nil {
		return err
	}
	return nil
}

// ValidateAccountID reports whether id may name an account.
func ValidateAccountID(id string) error {
	if id == "" {
		return Invalid("id", "required")
	}
	if !accountIDPattern.MatchString(id) {
		return Invalid("id", "must match [a-z][a-z0-9-]{2,30} (lowercase letter first, then letters, digits or '-')")
	}
	return nil
}

// AccountService is the registry of accounts: it creates them (with their
// database), authenticates API keys and hands out the per-account Store.
type AccountService interface {
	// CreateAccount provisions the account's database and returns its API key,
	// which is shown once and stored only as a hash.
	CreateAccount(ctx context.Context, a *Account) (apiKey string, err error)
	// IssueKey adds an API key to an existing account (one adopted from provisioned infrastructure starts with
	// none); earlier keys stay valid. ENOTFOUND for an unknown account.
	IssueKey(ctx context.Context, accountID string) (apiKey string, err error)
	// Authenticate resolves an API key to its account (EUNAUTHORIZED if unknown).
	Authenticate(ctx context.Context, apiKey string) (*Account, error)
	// Accounts lists every account.
	Accounts(ctx context.Context) ([]*Account, error)
	// Store returns the data store bound to the account's own database.
	Store(ctx context.Context, accountID string) (Store, error)
}

// Store is everything one account can do, bound to that account's database.
type Store interface {
	InventoryService
	AvailabilityService
	OrderService
	EventService
	FulfilmentService
	WorkflowService
	WebhookService
	Outbox
}
