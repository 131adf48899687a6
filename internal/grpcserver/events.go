package grpcserver

import (
	"context"

	"google.golang.org/grpc"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
)

// ListEvents returns a page of a workspace's events.
func (s *LedgerServer) ListEvents(ctx context.Context, r *pb.ListEventsRequest) (*pb.ListEventsResponse, error) {
	page, err := s.svc.ListEvents(ctx, ledger.ListEventsInput{
		Workspace: r.GetWorkspace(), AfterSequence: r.GetAfterSequence(), Account: r.GetAccount(),
		Types: fromProtoEventTypes(r.GetTypes()), PageSize: int(r.GetPageSize()),
	})
	if err != nil {
		return nil, err
	}
	out := &pb.ListEventsResponse{Events: make([]*pb.Event, len(page.Events)), LastSequence: page.Last}
	for i, e := range page.Events {
		out.Events[i] = ToProtoEvent(e)
	}
	return out, nil
}

// WatchEvents streams a workspace's events as they commit.
func (s *LedgerServer) WatchEvents(r *pb.WatchEventsRequest, stream grpc.ServerStreamingServer[pb.WatchEventsResponse]) error {
	return s.svc.WatchEvents(stream.Context(), ledger.WatchEventsInput{
		Workspace: r.GetWorkspace(), AfterSequence: r.GetAfterSequence(), Account: r.GetAccount(),
		Types: fromProtoEventTypes(r.GetTypes()),
	}, func(e ledger.Event) error {
		return stream.Send(&pb.WatchEventsResponse{Event: ToProtoEvent(e)})
	})
}

func fromProtoEventTypes(ts []string) []ledger.EventType {
	if len(ts) == 0 {
		return nil
	}
	out := make([]ledger.EventType, len(ts))
	for i, t := range ts {
		out[i] = ledger.EventType(t)
	}
	return out
}

// ToProtoEvent converts an event for the API; webhook deliveries send the
// same message as JSON.
func ToProtoEvent(e ledger.Event) *pb.Event {
	out := &pb.Event{
		Id: e.ID(), Workspace: e.Workspace, Sequence: e.Sequence, Type: string(e.Type),
		CreateTime: toProtoTime(e.CreateTime), Account: e.Account,
	}
	switch {
	case e.Transaction != nil:
		out.Data = &pb.Event_Transaction{Transaction: toProtoTransaction(*e.Transaction)}
	case e.Request != nil:
		out.Data = &pb.Event_Request{Request: toProtoCreditRequest(*e.Request)}
	case e.Hold != nil:
		out.Data = &pb.Event_Hold{Hold: toProtoHold(*e.Hold)}
	case e.Settings != nil:
		out.Data = &pb.Event_Settings{Settings: toProtoSettings(*e.Settings)}
	case e.Package != nil:
		out.Data = &pb.Event_CreditPackage{CreditPackage: toProtoPackage(*e.Package)}
	case e.Endpoint != nil:
		out.Data = &pb.Event_WebhookEndpoint{WebhookEndpoint: ToProtoWebhookEndpoint(*e.Endpoint)}
	case e.BalanceLow != nil:
		out.Data = &pb.Event_BalanceLow{BalanceLow: &pb.BalanceLow{
			Balance: e.BalanceLow.Balance, Available: e.BalanceLow.Available, Threshold: e.BalanceLow.Threshold,
		}}
	}
	return out
}
