package ledger

import (
	"context"
	"errors"
	"slices"
	"time"
)

// GetSettings returns the workspace's settings (defaults when never set).
func (s *Service) GetSettings(ctx context.Context, workspace string) (Settings, error) {
	if err := checkWorkspace(workspace); err != nil {
		return Settings{}, err
	}
	var st Settings
	err := s.store.View(ctx, func(ctx context.Context, tx ReadTx) error {
		var err error
		st, err = tx.Settings(ctx, workspace)
		return err
	})
	return st, err
}

func checkWorkspace(ws string) error {
	var v violations
	checkID(&v, "workspace", ws)
	return v.err()
}

// maskPaths validates an update mask against the mutable fields. An empty
// mask or "*" means every mutable field (a full replacement).
func maskPaths(v *violations, paths []string, mutable []string) map[string]bool {
	set := make(map[string]bool, len(mutable))
	if len(paths) == 0 || (len(paths) == 1 && paths[0] == "*") {
		for _, m := range mutable {
			set[m] = true
		}
		return set
	}
	for _, p := range paths {
		if !slices.Contains(mutable, p) {
			v.add("update_mask", "unknown or immutable field %q (allowed: %v)", truncate(p, 64), mutable)
			continue
		}
		set[p] = true
	}
	return set
}

// settingsFields are the settings an update mask may name.
var settingsFields = []string{"credit_payments_enabled", "require_distinct_approver", "payment_methods", "low_balance_threshold"}

// UpdateSettings changes the fields named in paths (see settingsFields;
// "*": all of them). With no paths, credit_payments_enabled and
// require_distinct_approver are replaced, and payment_methods and
// low_balance_threshold only when in sets them (a method, a threshold
// other than 0): a caller that never heard of them does not clear them.
// Naming payment_methods with an empty list offers no method.
func (s *Service) UpdateSettings(ctx context.Context, workspace string, in Settings, paths []string) (Settings, error) {
	var v violations
	checkID(&v, "workspace", workspace)
	var set map[string]bool
	if len(paths) == 0 {
		set = map[string]bool{
			"credit_payments_enabled": true, "require_distinct_approver": true,
			"payment_methods": len(in.PaymentMethods) > 0, "low_balance_threshold": in.LowBalanceThreshold != 0,
		}
	} else {
		set = maskPaths(&v, paths, settingsFields)
	}
	if set["payment_methods"] {
		in.PaymentMethods = checkPaymentMethods(&v, "settings.payment_methods", in.PaymentMethods)
	}
	if set["low_balance_threshold"] && (in.LowBalanceThreshold < 0 || in.LowBalanceThreshold > MaxBalance) {
		v.add("settings.low_balance_threshold", "must be between 0 (off) and %d", MaxBalance)
	}
	if err := v.err(); err != nil {
		return Settings{}, err
	}
	o := &settingsOp{opBase: opBase{workspace: workspace}, in: in, set: set}
	if err := s.batch.do(ctx, o); err != nil {
		return Settings{}, err
	}
	return o.res, o.err
}

// checkPaymentMethods validates the methods a workspace offers: known,
// each once. It returns them in PaymentMethod order (never nil: an empty
// list offers none).
func checkPaymentMethods(v *violations, field string, ms []PaymentMethod) []PaymentMethod {
	out := make([]PaymentMethod, 0, len(ms))
	for i, m := range ms {
		switch {
		case !m.Valid():
			v.add(field, "value %d: must be STRIPE, PAYPAL, BANK_TRANSFER or CRYPTO", i)
		case slices.Contains(out, m):
			v.add(field, "value %d: %s is listed twice", i, m)
		default:
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// ---------------------------------------------------------------------------
// Packages

var packageFields = []string{"display_name", "credits", "price", "active", "validity"}

func validatePackage(v *violations, p Package) {
	if p.DisplayName == "" {
		v.add("credit_package.display_name", "is required")
	} else {
		checkText(v, "credit_package.display_name", p.DisplayName, MaxDisplayNameLength)
	}
	checkAmount(v, "credit_package.credits", p.Credits)
	validateMoney(v, "credit_package.price", p.Price)
	switch {
	case p.Validity < 0 || p.Validity > MaxValidity:
		v.add("credit_package.validity", "must be between 0 (credits never expire) and 10 years")
	case p.Validity%time.Second != 0:
		v.add("credit_package.validity", "must be whole seconds")
	}
}

// CreatePackage creates an active package. An empty id gets a generated one.
func (s *Service) CreatePackage(ctx context.Context, workspace, id string, p Package) (Package, error) {
	var v violations
	checkID(&v, "workspace", workspace)
	if id != "" {
		checkID(&v, "package_id", id)
	}
	validatePackage(&v, p)
	if err := v.err(); err != nil {
		return Package{}, err
	}
	if id == "" {
		id = s.newID()
	}
	now := s.clock()
	p.Workspace, p.ID, p.Active, p.CreateTime, p.UpdateTime = workspace, id, true, now, now
	o := &createPackageOp{opBase: opBase{workspace: workspace}, p: p}
	if err := s.batch.do(ctx, o); err != nil {
		return Package{}, err
	}
	if o.err != nil {
		return Package{}, o.err
	}
	return p, nil
}

// GetPackage returns a package, active or archived.
func (s *Service) GetPackage(ctx context.Context, workspace, id string) (Package, error) {
	var v violations
	checkID(&v, "workspace", workspace)
	checkID(&v, "package_id", id)
	if err := v.err(); err != nil {
		return Package{}, err
	}
	var p Package
	err := s.store.View(ctx, func(ctx context.Context, tx ReadTx) error {
		var err error
		p, err = tx.Package(ctx, workspace, id)
		return err
	})
	return p, err
}

// ListPackagesInput selects a page of packages.
type ListPackagesInput struct {
	Workspace    string
	ShowInactive bool
	PageSize     int32
	PageToken    string
}

// PackagePage is a page of packages ordered by ID.
type PackagePage struct {
	Packages      []Package
	NextPageToken string
}

// ListPackages lists the active packages (and archived ones on request).
func (s *Service) ListPackages(ctx context.Context, in ListPackagesInput) (PackagePage, error) {
	var v violations
	checkID(&v, "workspace", in.Workspace)
	size := pageSize(&v, in.PageSize)
	if err := v.err(); err != nil {
		return PackagePage{}, err
	}
	show := "active"
	if in.ShowInactive {
		show = "all"
	}
	bind := binding("packages", in.Workspace, show)
	q := PackageQuery{Workspace: in.Workspace, ShowInactive: in.ShowInactive, Limit: size + 1}
	if in.PageToken != "" {
		cur, err := s.tokens.Decode(bind, in.PageToken)
		if err != nil {
			return PackagePage{}, err
		}
		q.AfterID = cur
	}
	var rows []Package
	err := s.store.View(ctx, func(ctx context.Context, tx ReadTx) error {
		var err error
		rows, err = tx.ListPackages(ctx, q)
		return err
	})
	if err != nil {
		return PackagePage{}, err
	}
	page := PackagePage{Packages: rows}
	if len(rows) > size {
		page.Packages = rows[:size]
		page.NextPageToken = s.tokens.Encode(bind, rows[size-1].ID)
	}
	return page, nil
}

// UpdatePackage changes the fields named in paths (display_name, credits,
// price, active). Requests already submitted keep the credits they were
// submitted with.
func (s *Service) UpdatePackage(ctx context.Context, workspace, id string, in Package, paths []string) (Package, error) {
	var v violations
	checkID(&v, "workspace", workspace)
	checkID(&v, "package_id", id)
	set := maskPaths(&v, paths, packageFields)
	if err := v.err(); err != nil {
		return Package{}, err
	}
	o := &updatePackageOp{opBase: opBase{workspace: workspace}, id: id, in: in, set: set}
	if err := s.batch.do(ctx, o); err != nil {
		return Package{}, err
	}
	if o.err != nil {
		return Package{}, o.err
	}
	return o.res, nil
}

// ArchivePackage makes a package inactive; it stays readable.
func (s *Service) ArchivePackage(ctx context.Context, workspace, id string) (Package, error) {
	return s.UpdatePackage(ctx, workspace, id, Package{Active: false}, []string{"active"})
}

// ---------------------------------------------------------------------------
// Conversion rates, quotes and the credit-payment check

// SetConversionRate makes rate (credits per unit, decimal string > 0) the
// currency's active rate; the previous one is kept inactive.
func (s *Service) SetConversionRate(ctx context.Context, workspace, currency, rate string) (ConversionRate, error) {
	var v violations
	checkID(&v, "workspace", workspace)
	if !validCurrency(currency) {
		v.add("currency_code", "must be a three-letter upper-case ISO 4217 code")
	}
	d, err := ParseDecimal(rate)
	switch {
	case err != nil:
		v.add("rate", "%s", err.Error())
	case d.IsZero():
		v.add("rate", "must be greater than 0")
	}
	if err := v.err(); err != nil {
		return ConversionRate{}, err
	}
	r := ConversionRate{Workspace: workspace, Currency: currency, Rate: d, Active: true, CreateTime: s.clock()}
	o := &rateOp{opBase: opBase{workspace: workspace}, r: r}
	if err := s.batch.do(ctx, o); err != nil {
		return ConversionRate{}, err
	}
	if o.err != nil {
		return ConversionRate{}, o.err
	}
	return r, nil
}

// ListConversionRates lists the active rates, and with history the replaced ones.
func (s *Service) ListConversionRates(ctx context.Context, workspace string, history bool) ([]ConversionRate, error) {
	if err := checkWorkspace(workspace); err != nil {
		return nil, err
	}
	var rates []ConversionRate
	err := s.store.View(ctx, func(ctx context.Context, tx ReadTx) error {
		var err error
		rates, err = tx.ListRates(ctx, workspace, history)
		return err
	})
	return rates, err
}

// QuoteResult is a price converted to credits.
type QuoteResult struct {
	Credits int64
	Rate    ConversionRate
	Price   Money
}

// Quote converts price to credits with the active rate of its currency,
// rounded up to a whole credit.
func (s *Service) Quote(ctx context.Context, workspace string, price Money) (QuoteResult, error) {
	var v violations
	checkID(&v, "workspace", workspace)
	validateMoney(&v, "price", price)
	if err := v.err(); err != nil {
		return QuoteResult{}, err
	}
	var res QuoteResult
	err := s.store.View(ctx, func(ctx context.Context, tx ReadTx) error {
		rate, err := activeRate(ctx, tx, workspace, price.Currency)
		if err != nil {
			return err
		}
		credits, err := creditsForPrice(price, rate.Rate)
		if err != nil {
			return err
		}
		res = QuoteResult{Credits: credits, Rate: rate, Price: price}
		return nil
	})
	return res, err
}

func activeRate(ctx context.Context, tx ReadTx, workspace, currency string) (ConversionRate, error) {
	rate, err := tx.ActiveRate(ctx, workspace, currency)
	if errors.Is(err, ErrNotFound) {
		return ConversionRate{}, newErr(CodeFailedPrecondition, ReasonNoConversionRate,
			"no conversion rate is set for "+currency, map[string]string{"currency_code": currency})
	}
	return rate, err
}

// CheckInput is what is to be paid: Credits, or a Price to convert.
type CheckInput struct {
	Workspace string
	Account   string
	Credits   int64
	Price     *Money
}

// CheckResult answers whether the account can pay with credits.
type CheckResult struct {
	Allowed               bool
	CreditsRequired       int64
	Balance               int64
	Version               int64
	CreditPaymentsEnabled bool
	Reason                string // "" when allowed
}

// CheckCreditPayment answers, from one consistent snapshot, whether "Buy
// with Credit" / "Pay with Credit" may be offered, and why not. Reasons are
// checked in order: CREDIT_PAYMENTS_DISABLED, NO_CONVERSION_RATE,
// INSUFFICIENT_CREDITS.
func (s *Service) CheckCreditPayment(ctx context.Context, in CheckInput) (CheckResult, error) {
	var v violations
	checkID(&v, "workspace", in.Workspace)
	checkID(&v, "account", in.Account)
	switch {
	case in.Price != nil && in.Credits != 0:
		v.add("cost", "give either credits or price, not both")
	case in.Price != nil:
		validateMoney(&v, "price", *in.Price)
	case in.Credits <= 0:
		v.add("credits", "must be greater than 0 (or give a price)")
	default:
		checkAmount(&v, "credits", in.Credits)
	}
	if err := v.err(); err != nil {
		return CheckResult{}, err
	}
	var res CheckResult
	err := s.store.View(ctx, func(ctx context.Context, tx ReadTx) error {
		res = CheckResult{}
		st, err := tx.Settings(ctx, in.Workspace)
		if err != nil {
			return err
		}
		acct, err := tx.Account(ctx, in.Workspace, in.Account)
		if err != nil {
			return err
		}
		res.Balance, res.Version, res.CreditPaymentsEnabled = acct.Balance, acct.Version, st.CreditPaymentsEnabled
		res.CreditsRequired = in.Credits
		noRate := false
		if in.Price != nil {
			rate, err := activeRate(ctx, tx, in.Workspace, in.Price.Currency)
			switch {
			case ReasonOf(err) == ReasonNoConversionRate:
				noRate = true
			case err != nil:
				return err
			default:
				if res.CreditsRequired, err = creditsForPrice(*in.Price, rate.Rate); err != nil {
					return err
				}
			}
		}
		switch {
		case !st.CreditPaymentsEnabled:
			res.Reason = ReasonCreditPaymentsDisabled
		case noRate:
			res.Reason = ReasonNoConversionRate
		case acct.Available() < res.CreditsRequired:
			res.Reason = ReasonInsufficientCredits
		default:
			res.Allowed = true
		}
		return nil
	})
	return res, err
}
