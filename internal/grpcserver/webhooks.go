package grpcserver

import (
	"context"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
)

// WebhooksServer implements pb.CreditWebhooksServer: the workspace's
// webhook endpoints and their delivery log.
type WebhooksServer struct {
	pb.UnimplementedCreditWebhooksServer
	svc *ledger.Service
}

// NewWebhooksServer returns the CreditWebhooks service over svc.
func NewWebhooksServer(svc *ledger.Service) *WebhooksServer { return &WebhooksServer{svc: svc} }

// CreateWebhookEndpoint adds an endpoint; the response holds its secret.
func (s *WebhooksServer) CreateWebhookEndpoint(ctx context.Context, r *pb.CreateWebhookEndpointRequest) (*pb.CreateWebhookEndpointResponse, error) {
	in := fromProtoWebhookEndpoint(r.GetWebhookEndpoint())
	in.Workspace = r.GetWorkspace()
	e, err := s.svc.CreateWebhookEndpoint(ctx, in)
	if err != nil {
		return nil, err
	}
	return &pb.CreateWebhookEndpointResponse{WebhookEndpoint: ToProtoWebhookEndpoint(e.Public()), Secret: e.Secret}, nil
}

// ListWebhookEndpoints lists the workspace's endpoints.
func (s *WebhooksServer) ListWebhookEndpoints(ctx context.Context, r *pb.ListWebhookEndpointsRequest) (*pb.ListWebhookEndpointsResponse, error) {
	eps, err := s.svc.ListWebhookEndpoints(ctx, r.GetWorkspace())
	if err != nil {
		return nil, err
	}
	out := &pb.ListWebhookEndpointsResponse{WebhookEndpoints: make([]*pb.WebhookEndpoint, len(eps))}
	for i, e := range eps {
		out.WebhookEndpoints[i] = ToProtoWebhookEndpoint(e)
	}
	return out, nil
}

// UpdateWebhookEndpoint changes an endpoint.
func (s *WebhooksServer) UpdateWebhookEndpoint(ctx context.Context, r *pb.UpdateWebhookEndpointRequest) (*pb.UpdateWebhookEndpointResponse, error) {
	e, err := s.svc.UpdateWebhookEndpoint(ctx, r.GetWorkspace(), r.GetEndpointId(), fromProtoWebhookEndpoint(r.GetWebhookEndpoint()),
		r.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, err
	}
	return &pb.UpdateWebhookEndpointResponse{WebhookEndpoint: ToProtoWebhookEndpoint(e)}, nil
}

// DeleteWebhookEndpoint removes an endpoint.
func (s *WebhooksServer) DeleteWebhookEndpoint(ctx context.Context, r *pb.DeleteWebhookEndpointRequest) (*pb.DeleteWebhookEndpointResponse, error) {
	if err := s.svc.DeleteWebhookEndpoint(ctx, r.GetWorkspace(), r.GetEndpointId()); err != nil {
		return nil, err
	}
	return &pb.DeleteWebhookEndpointResponse{}, nil
}

// ListWebhookDeliveries lists an endpoint's attempts, newest first.
func (s *WebhooksServer) ListWebhookDeliveries(ctx context.Context, r *pb.ListWebhookDeliveriesRequest) (*pb.ListWebhookDeliveriesResponse, error) {
	page, err := s.svc.ListWebhookDeliveries(ctx, r.GetWorkspace(), r.GetEndpointId(), r.GetPageSize(), r.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &pb.ListWebhookDeliveriesResponse{WebhookDeliveries: make([]*pb.WebhookDelivery, len(page.Deliveries)), NextPageToken: page.NextPageToken}
	for i, d := range page.Deliveries {
		out.WebhookDeliveries[i] = &pb.WebhookDelivery{
			EventSequence: d.EventSequence, EventId: ledger.EventID(d.Workspace, d.EventSequence), EventType: string(d.EventType),
			Attempt: int32(min(d.Attempt, 1<<30)), AttemptTime: toProtoTime(d.AttemptTime), StatusCode: int32(min(d.StatusCode, 999)), //nolint:gosec // G115: bounded just before
			Latency: toProtoDuration(d.Latency), Succeeded: d.Succeeded, Error: d.Error,
		}
	}
	return out, nil
}

func fromProtoWebhookEndpoint(e *pb.WebhookEndpoint) ledger.WebhookEndpoint {
	out := ledger.WebhookEndpoint{URL: e.GetUrl(), Description: e.GetDescription(), Enabled: e.GetEnabled()}
	for _, t := range e.GetEventTypes() {
		out.EventTypes = append(out.EventTypes, ledger.EventType(t))
	}
	return out
}

// ToProtoWebhookEndpoint converts an endpoint for the API; its secret
// never goes there (only CreateWebhookEndpointResponse.secret holds one).
func ToProtoWebhookEndpoint(e ledger.WebhookEndpoint) *pb.WebhookEndpoint {
	out := &pb.WebhookEndpoint{
		Id: e.ID, Workspace: e.Workspace, Url: e.URL, Description: e.Description, Enabled: e.Enabled,
		DisabledReason: e.DisabledReason, DeliveredSequence: e.DeliveredSequence,
		CreateTime: toProtoTime(e.CreateTime), UpdateTime: toProtoTime(e.UpdateTime),
	}
	for _, t := range e.EventTypes {
		out.EventTypes = append(out.EventTypes, string(t))
	}
	return out
}
