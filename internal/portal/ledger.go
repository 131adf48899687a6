package portal

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The ledger's REST gateway, as README.md documents it: protojson in
// lowerCamelCase, int64 as strings, zero values omitted.

// Balance is GET …/accounts/{account}/balance.
type Balance struct {
	Account               string    `json:"account"`
	Balance               Int64     `json:"balance"`
	Version               Int64     `json:"version"`
	Available             Int64     `json:"available"`
	Held                  Int64     `json:"held"`
	PendingRequestCredits Int64     `json:"pendingRequestCredits"`
	CreditPaymentsEnabled bool      `json:"creditPaymentsEnabled"`
	UpdateTime            time.Time `json:"updateTime"`
	NextExpireTime        time.Time `json:"nextExpireTime"`
	NextExpiringCredits   Int64     `json:"nextExpiringCredits"`
}

// Transaction is one history entry.
type Transaction struct {
	ID           string    `json:"id"`
	Type         string    `json:"type"` // TRANSACTION_TYPE_IN / _OUT
	Kind         string    `json:"kind"`
	Amount       Int64     `json:"amount"`
	BalanceAfter Int64     `json:"balanceAfter"`
	Version      Int64     `json:"accountVersion"`
	Reference    string    `json:"reference"`
	CreateTime   time.Time `json:"createTime"`
}

// In says whether the entry added credits.
func (t Transaction) In() bool { return t.Type == "TRANSACTION_TYPE_IN" }

// CreditRequest is a manual purchase waiting for (or decided by) the agency.
type CreditRequest struct {
	ID               string    `json:"id"`
	Account          string    `json:"account"`
	Amount           Int64     `json:"amount"`
	PackageID        string    `json:"packageId"`
	PaymentMethod    string    `json:"paymentMethod"`
	PaymentReference string    `json:"paymentReference"`
	Note             string    `json:"note"`
	Status           string    `json:"status"`
	DecisionReason   string    `json:"decisionReason"`
	DecidedBy        string    `json:"decidedBy"`
	SubmittedBy      string    `json:"submittedBy"`
	CreateTime       time.Time `json:"createTime"`
}

// Package is a credit package.
type Package struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Credits     Int64  `json:"credits"`
	Price       Money  `json:"price"`
	Active      bool   `json:"active"`
	Validity    string `json:"validity"`
}

// Rate is a conversion rate: credits per unit of a currency.
type Rate struct {
	Currency   string    `json:"currencyCode"`
	Rate       string    `json:"rate"`
	Active     bool      `json:"active"`
	CreateTime time.Time `json:"createTime"`
}

// Settings are the workspace's credit settings.
type Settings struct {
	CreditPaymentsEnabled   bool     `json:"creditPaymentsEnabled"`
	PaymentMethods          []string `json:"paymentMethods"`
	LowBalanceThreshold     Int64    `json:"lowBalanceThreshold"`
	RequireDistinctApprover bool     `json:"requireDistinctApprover"`
}

// WebhookEndpoint is one of the agency's webhook receivers.
type WebhookEndpoint struct {
	ID                string    `json:"id"`
	URL               string    `json:"url"`
	EventTypes        []string  `json:"eventTypes"`
	Description       string    `json:"description"`
	Enabled           bool      `json:"enabled"`
	DisabledReason    string    `json:"disabledReason"`
	DeliveredSequence Int64     `json:"deliveredSequence"`
	CreateTime        time.Time `json:"createTime"`
}

// ledgerAPI is the ledger's REST gateway.
type ledgerAPI struct{ api }

func wsPath(ws string) string { return "/v1/workspaces/" + pathEsc(ws) }

func acctPath(ws, acct string) string { return wsPath(ws) + "/accounts/" + pathEsc(acct) }

// Balance reads an account's balance at minVersion or later (0: any).
func (l *ledgerAPI) Balance(ctx context.Context, tok, ws, acct string, minVersion int64) (Balance, error) {
	path := acctPath(ws, acct) + "/balance"
	if minVersion > 0 {
		path += "?minVersion=" + strconv.FormatInt(minVersion, 10)
	}
	var b Balance
	err := l.call(ctx, tok, http.MethodGet, path, nil, &b)
	return b, err
}

// History is one page of an account's transactions, newest first, with
// the account at minVersion or later (0: any).
func (l *ledgerAPI) History(ctx context.Context, tok, ws, acct, pageToken string, pageSize int, minVersion int64) ([]Transaction, string, error) {
	q := url.Values{"pageSize": {strconv.Itoa(pageSize)}}
	if pageToken != "" {
		q.Set("pageToken", pageToken)
	}
	if minVersion > 0 {
		q.Set("minVersion", strconv.FormatInt(minVersion, 10))
	}
	var out struct {
		Transactions  []Transaction `json:"transactions"`
		NextPageToken string        `json:"nextPageToken"`
	}
	err := l.call(ctx, tok, http.MethodGet, acctPath(ws, acct)+"/transactions?"+q.Encode(), nil, &out)
	return out.Transactions, out.NextPageToken, err
}

// Export opens the account's history as CSV (the ledger's export); the
// caller closes the body.
func (l *ledgerAPI) Export(ctx context.Context, tok, ws, acct string) (*http.Response, error) {
	res, err := l.send(ctx, tok, http.MethodGet, acctPath(ws, acct)+"/transactions:export", nil)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		defer func() { _ = res.Body.Close() }()
		data, _ := readLimited(res.Body)
		return nil, l.decodeError(res.StatusCode, data)
	}
	return res, nil
}

// Requests lists credit requests: of one account when acct is set, with
// the status (REQUEST_STATUS_PENDING, …) when set; the queue is oldest
// first.
func (l *ledgerAPI) Requests(ctx context.Context, tok, ws, acct, status string) ([]CreditRequest, error) {
	q := url.Values{"pageSize": {"200"}}
	if acct != "" {
		q.Set("account", acct)
	}
	if status != "" {
		q.Set("status", status)
	}
	var out struct {
		Requests []CreditRequest `json:"requests"`
	}
	err := l.call(ctx, tok, http.MethodGet, wsPath(ws)+"/creditRequests?"+q.Encode(), nil, &out)
	return out.Requests, err
}

// CancelRequest withdraws a pending request (the client's own).
func (l *ledgerAPI) CancelRequest(ctx context.Context, tok, ws, id, key, reason string) error {
	body := map[string]any{"idempotencyKey": key, "reason": reason}
	return l.call(ctx, tok, http.MethodPost, wsPath(ws)+"/creditRequests/"+pathEsc(id)+":cancel", body, nil)
}

// Decide accepts or rejects a pending request (the agency's admins). It
// also answers the account's version after an acceptance (0 otherwise).
func (l *ledgerAPI) Decide(ctx context.Context, tok, ws, id string, accept bool, reason string) (CreditRequest, int64, error) {
	decision, verb := "DECISION_REJECT", "reject"
	if accept {
		decision, verb = "DECISION_ACCEPT", "accept"
	}
	// One key per request and decision: a double click replays, a
	// different decision of the same request is the ledger's to refuse.
	body := map[string]any{"decision": decision, "reason": reason, "idempotencyKey": "portal:" + verb + ":" + id}
	var out struct {
		Request     CreditRequest `json:"request"`
		Transaction struct {
			Version Int64 `json:"accountVersion"`
		} `json:"transaction"`
	}
	err := l.call(ctx, tok, http.MethodPost, wsPath(ws)+"/creditRequests/"+pathEsc(id)+":decide", body, &out)
	return out.Request, int64(out.Transaction.Version), err
}

// Accounts is every client's balance in the workspace, by account id.
func (l *ledgerAPI) Accounts(ctx context.Context, tok, ws string) ([]Balance, error) {
	var all []Balance
	pageToken := ""
	for range 20 { // at most 10000 clients on one page of the portal
		q := url.Values{"pageSize": {"500"}}
		if pageToken != "" {
			q.Set("pageToken", pageToken)
		}
		var out struct {
			Accounts      []Balance `json:"accounts"`
			NextPageToken string    `json:"nextPageToken"`
		}
		if err := l.call(ctx, tok, http.MethodGet, wsPath(ws)+"/accounts?"+q.Encode(), nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Accounts...)
		if pageToken = out.NextPageToken; pageToken == "" {
			break
		}
	}
	return all, nil
}

func (l *ledgerAPI) Settings(ctx context.Context, tok, ws string) (Settings, error) {
	var s Settings
	err := l.call(ctx, tok, http.MethodGet, wsPath(ws)+"/settings", nil, &s)
	return s, err
}

// UpdateSettings changes the fields named in mask (proto names).
func (l *ledgerAPI) UpdateSettings(ctx context.Context, tok, ws string, body map[string]any, mask ...string) (Settings, error) {
	var s Settings
	q := url.Values{"updateMask": {strings.Join(mask, ",")}}
	err := l.call(ctx, tok, http.MethodPatch, wsPath(ws)+"/settings?"+q.Encode(), body, &s)
	return s, err
}

// Packages lists the workspace's packages; inactive ones too when all.
func (l *ledgerAPI) Packages(ctx context.Context, tok, ws string, all bool) ([]Package, error) {
	q := url.Values{"pageSize": {"500"}}
	if all {
		q.Set("showInactive", "true")
	}
	var out struct {
		Packages []Package `json:"creditPackages"`
	}
	err := l.call(ctx, tok, http.MethodGet, wsPath(ws)+"/packages?"+q.Encode(), nil, &out)
	return out.Packages, err
}

func packageBody(p Package) map[string]any {
	return map[string]any{"displayName": p.DisplayName, "credits": strconv.FormatInt(int64(p.Credits), 10), "price": p.Price.ledgerJSON()}
}

// CreatePackage creates a package; id may be empty (the ledger names it).
func (l *ledgerAPI) CreatePackage(ctx context.Context, tok, ws, id string, p Package) (Package, error) {
	path := wsPath(ws) + "/packages"
	if id != "" {
		path += "?" + url.Values{"packageId": {id}}.Encode()
	}
	var out Package
	err := l.call(ctx, tok, http.MethodPost, path, packageBody(p), &out)
	return out, err
}

// UpdatePackage replaces the name, credits and price of a package.
func (l *ledgerAPI) UpdatePackage(ctx context.Context, tok, ws, id string, p Package) (Package, error) {
	q := url.Values{"updateMask": {"display_name,credits,price"}}
	var out Package
	err := l.call(ctx, tok, http.MethodPatch, wsPath(ws)+"/packages/"+pathEsc(id)+"?"+q.Encode(), packageBody(p), &out)
	return out, err
}

// ActivatePackage sets a package's active flag (false archives it).
func (l *ledgerAPI) ActivatePackage(ctx context.Context, tok, ws, id string, active bool) error {
	if !active {
		return l.call(ctx, tok, http.MethodPost, wsPath(ws)+"/packages/"+pathEsc(id)+":archive", map[string]any{}, nil)
	}
	q := url.Values{"updateMask": {"active"}}
	return l.call(ctx, tok, http.MethodPatch, wsPath(ws)+"/packages/"+pathEsc(id)+"?"+q.Encode(), map[string]any{"active": true}, nil)
}

// Rates lists the active conversion rates.
func (l *ledgerAPI) Rates(ctx context.Context, tok, ws string) ([]Rate, error) {
	var out struct {
		Rates []Rate `json:"conversionRates"`
	}
	err := l.call(ctx, tok, http.MethodGet, wsPath(ws)+"/conversionRates", nil, &out)
	return out.Rates, err
}

// SetRate sets (replaces) a currency's rate.
func (l *ledgerAPI) SetRate(ctx context.Context, tok, ws, currency, rate string) error {
	return l.call(ctx, tok, http.MethodPut, wsPath(ws)+"/conversionRates/"+pathEsc(currency), map[string]any{"rate": rate}, nil)
}

// Quote converts a price with the workspace's active rate.
func (l *ledgerAPI) Quote(ctx context.Context, tok, ws string, price Money) (int64, error) {
	var out struct {
		Credits Int64 `json:"credits"`
	}
	err := l.call(ctx, tok, http.MethodPost, wsPath(ws)+":quote", map[string]any{"price": price.ledgerJSON()}, &out)
	return int64(out.Credits), err
}

func (l *ledgerAPI) Webhooks(ctx context.Context, tok, ws string) ([]WebhookEndpoint, error) {
	var out struct {
		Endpoints []WebhookEndpoint `json:"webhookEndpoints"`
	}
	err := l.call(ctx, tok, http.MethodGet, wsPath(ws)+"/webhookEndpoints", nil, &out)
	return out.Endpoints, err
}

// CreateWebhook registers an endpoint; the secret is returned once.
func (l *ledgerAPI) CreateWebhook(ctx context.Context, tok, ws, target, description string, types []string) (WebhookEndpoint, string, error) {
	body := map[string]any{"url": target, "eventTypes": types, "description": description}
	var out struct {
		Endpoint WebhookEndpoint `json:"webhookEndpoint"`
		Secret   string          `json:"secret"`
	}
	err := l.call(ctx, tok, http.MethodPost, wsPath(ws)+"/webhookEndpoints", body, &out)
	return out.Endpoint, out.Secret, err
}

// EnableWebhook enables or disables an endpoint.
func (l *ledgerAPI) EnableWebhook(ctx context.Context, tok, ws, id string, enabled bool) error {
	q := url.Values{"updateMask": {"enabled"}}
	return l.call(ctx, tok, http.MethodPatch, wsPath(ws)+"/webhookEndpoints/"+pathEsc(id)+"?"+q.Encode(), map[string]any{"enabled": enabled}, nil)
}

func (l *ledgerAPI) DeleteWebhook(ctx context.Context, tok, ws, id string) error {
	return l.call(ctx, tok, http.MethodDelete, wsPath(ws)+"/webhookEndpoints/"+pathEsc(id), nil, nil)
}
