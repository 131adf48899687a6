package grpcserver

import (
	"context"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
)

// SettingsServer implements creditledger.v1.CreditSettings over a
// ledger.Service. Like LedgerServer it only converts.
type SettingsServer struct {
	pb.UnimplementedCreditSettingsServer
	svc *ledger.Service
}

// NewSettingsServer returns the CreditSettings service over svc.
func NewSettingsServer(svc *ledger.Service) *SettingsServer { return &SettingsServer{svc: svc} }

// GetSettings returns the workspace's settings.
func (s *SettingsServer) GetSettings(ctx context.Context, r *pb.GetSettingsRequest) (*pb.GetSettingsResponse, error) {
	st, err := s.svc.GetSettings(ctx, r.GetWorkspace())
	if err != nil {
		return nil, err
	}
	return &pb.GetSettingsResponse{Settings: toProtoSettings(st)}, nil
}

// UpdateSettings changes the fields named in update_mask.
func (s *SettingsServer) UpdateSettings(ctx context.Context, r *pb.UpdateSettingsRequest) (*pb.UpdateSettingsResponse, error) {
	in, err := fromProtoSettings(r.GetSettings())
	if err != nil {
		return nil, err
	}
	st, err := s.svc.UpdateSettings(ctx, r.GetWorkspace(), in, fromProtoFieldMask(r.GetUpdateMask()))
	if err != nil {
		return nil, err
	}
	return &pb.UpdateSettingsResponse{Settings: toProtoSettings(st)}, nil
}

// CreatePackage creates an active package.
func (s *SettingsServer) CreatePackage(ctx context.Context, r *pb.CreatePackageRequest) (*pb.CreatePackageResponse, error) {
	in, err := fromProtoPackage(r.GetCreditPackage())
	if err != nil {
		return nil, err
	}
	p, err := s.svc.CreatePackage(ctx, r.GetWorkspace(), r.GetPackageId(), in)
	if err != nil {
		return nil, err
	}
	return &pb.CreatePackageResponse{CreditPackage: toProtoPackage(p)}, nil
}

// ListPackages returns a page of packages.
func (s *SettingsServer) ListPackages(ctx context.Context, r *pb.ListPackagesRequest) (*pb.ListPackagesResponse, error) {
	page, err := s.svc.ListPackages(ctx, ledger.ListPackagesInput{
		Workspace: r.GetWorkspace(), ShowInactive: r.GetShowInactive(),
		PageSize: r.GetPageSize(), PageToken: r.GetPageToken(),
	})
	if err != nil {
		return nil, err
	}
	out := &pb.ListPackagesResponse{
		CreditPackages: make([]*pb.CreditPackage, len(page.Packages)),
		NextPageToken:  page.NextPageToken,
	}
	for i, p := range page.Packages {
		out.CreditPackages[i] = toProtoPackage(p)
	}
	return out, nil
}

// GetPackage returns one package.
func (s *SettingsServer) GetPackage(ctx context.Context, r *pb.GetPackageRequest) (*pb.GetPackageResponse, error) {
	p, err := s.svc.GetPackage(ctx, r.GetWorkspace(), r.GetPackageId())
	if err != nil {
		return nil, err
	}
	return &pb.GetPackageResponse{CreditPackage: toProtoPackage(p)}, nil
}

// UpdatePackage changes the fields named in update_mask.
func (s *SettingsServer) UpdatePackage(ctx context.Context, r *pb.UpdatePackageRequest) (*pb.UpdatePackageResponse, error) {
	in, err := fromProtoPackage(r.GetCreditPackage())
	if err != nil {
		return nil, err
	}
	p, err := s.svc.UpdatePackage(ctx, r.GetWorkspace(), r.GetPackageId(), in, fromProtoFieldMask(r.GetUpdateMask()))
	if err != nil {
		return nil, err
	}
	return &pb.UpdatePackageResponse{CreditPackage: toProtoPackage(p)}, nil
}

// ArchivePackage makes a package inactive.
func (s *SettingsServer) ArchivePackage(ctx context.Context, r *pb.ArchivePackageRequest) (*pb.ArchivePackageResponse, error) {
	p, err := s.svc.ArchivePackage(ctx, r.GetWorkspace(), r.GetPackageId())
	if err != nil {
		return nil, err
	}
	return &pb.ArchivePackageResponse{CreditPackage: toProtoPackage(p)}, nil
}

// SetConversionRate sets a currency's active rate.
func (s *SettingsServer) SetConversionRate(ctx context.Context, r *pb.SetConversionRateRequest) (*pb.SetConversionRateResponse, error) {
	rate, err := s.svc.SetConversionRate(ctx, r.GetWorkspace(), r.GetCurrencyCode(), r.GetRate())
	if err != nil {
		return nil, err
	}
	return &pb.SetConversionRateResponse{ConversionRate: toProtoConversionRate(rate)}, nil
}

// ListConversionRates lists the workspace's rates.
func (s *SettingsServer) ListConversionRates(ctx context.Context, r *pb.ListConversionRatesRequest) (*pb.ListConversionRatesResponse, error) {
	rates, err := s.svc.ListConversionRates(ctx, r.GetWorkspace(), r.GetShowHistory())
	if err != nil {
		return nil, err
	}
	out := &pb.ListConversionRatesResponse{ConversionRates: make([]*pb.ConversionRate, len(rates))}
	for i, rate := range rates {
		out.ConversionRates[i] = toProtoConversionRate(rate)
	}
	return out, nil
}

// Quote converts a price to credits.
func (s *SettingsServer) Quote(ctx context.Context, r *pb.QuoteRequest) (*pb.QuoteResponse, error) {
	q, err := s.svc.Quote(ctx, r.GetWorkspace(), fromProtoMoney(r.GetPrice()))
	if err != nil {
		return nil, err
	}
	return &pb.QuoteResponse{
		Credits:        q.Credits,
		ConversionRate: toProtoConversionRate(q.Rate),
		Price:          toProtoMoney(q.Price),
	}, nil
}
