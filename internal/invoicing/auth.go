package invoicing

import (
	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/token"
)

// The routes' rules (see consumer.Access). The portal backend calls with
// the client's own token (role client, bound to its account) or with an
// admin or service token of the workspace.
var (
	// readAccess: invoices and their payment options.
	readAccess = consumer.Access{Roles: token.Roles, Scopes: []string{token.ScopeLedgerRead}}
	// payAccess: Pay with Credit spends the account's credits (the client
	// itself, its agency, or an internal service).
	payAccess = consumer.Access{Roles: token.Roles, Scopes: []string{token.ScopeRequestsSubmit, token.ScopeLedgerWrite}}
	// issueAccess: invoices are issued by the agency (its admins) or its
	// billing system (a service), never by the client billed.
	issueAccess = consumer.Access{Roles: []token.Role{token.RoleAdmin, token.RoleService}, Scopes: []string{token.ScopeSettingsAdmin, token.ScopeLedgerWrite}}
)
