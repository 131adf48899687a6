package checkout

import (
	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/token"
)

// The routes' rules (see consumer.Access). The portal backend calls with
// the client's own token (role client, bound to its account) or with an
// admin or service token of the workspace.
var (
	// readAccess: the catalog, an account's orders, purchases and options.
	readAccess = consumer.Access{Roles: token.Roles, Scopes: []string{token.ScopeLedgerRead}}
	// spendAccess: orders and purchases, which move the account's credits
	// (the client itself, its agency, or an internal service).
	spendAccess = consumer.Access{Roles: token.Roles, Scopes: []string{token.ScopeRequestsSubmit, token.ScopeLedgerWrite}}
	// catalogAccess: the agency's catalog is the agency's setting.
	catalogAccess = consumer.Access{Roles: []token.Role{token.RoleAdmin}, Scopes: []string{token.ScopeSettingsAdmin}}
)
