package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// Webhook endpoints and their delivery log (SPEC §10).

func init() {
	register(webhooksCreateCmd(), webhooksListCmd(), webhooksUpdateCmd(), webhooksDeleteCmd(), webhooksDeliveriesCmd())
}

// typesFlag splits a comma-separated list of event types.
func typesFlag(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func endpointTypes(e *pb.WebhookEndpoint) string {
	if len(e.GetEventTypes()) == 0 {
		return "all"
	}
	return strings.Join(e.GetEventTypes(), ",")
}

func webhooksCreateCmd() *command {
	return &command{
		name: "webhooks create", synopsis: "--url URL [--types T1,T2] [--description TEXT]",
		summary: "add a webhook endpoint; prints its signing secret, shown this once",
		setup: func(fs *flag.FlagSet) runFunc {
			url := fs.String("url", "", "where events are POSTed (https); required")
			types := fs.String("types", "", "event types to deliver, comma-separated (default: all)")
			desc := fs.String("description", "", "free text for the agency")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 0, "")
				if err != nil {
					return err
				}
				if *url == "" {
					return usagef("--url is required")
				}
				res, err := l.Webhooks().CreateWebhookEndpoint(ctx, &pb.CreateWebhookEndpointRequest{
					Workspace: ws, WebhookEndpoint: &pb.WebhookEndpoint{Url: *url, EventTypes: typesFlag(*types), Description: *desc},
				})
				if err != nil {
					return err
				}
				e := res.GetWebhookEndpoint()
				_, _ = fmt.Fprintf(c.stdout, "webhook endpoint %s: %s, events %s, from sequence %d on\nsigning secret (shown once): %s\n",
					e.GetId(), cell(e.GetUrl()), cell(endpointTypes(e)), e.GetDeliveredSequence()+1, res.GetSecret())
				return nil
			}
		},
	}
}

func webhooksListCmd() *command {
	return &command{
		name: "webhooks list", synopsis: "",
		summary: "list the workspace's webhook endpoints",
		setup: func(*flag.FlagSet) runFunc {
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 0, "")
				if err != nil {
					return err
				}
				res, err := l.Webhooks().ListWebhookEndpoints(ctx, &pb.ListWebhookEndpointsRequest{Workspace: ws})
				if err != nil {
					return err
				}
				var rows [][]string
				for _, e := range res.GetWebhookEndpoints() {
					state := "enabled"
					if !e.GetEnabled() {
						state = "disabled: " + e.GetDisabledReason()
					}
					rows = append(rows, []string{
						e.GetId(), e.GetUrl(), endpointTypes(e), strconv.FormatInt(e.GetDeliveredSequence(), 10), state, e.GetDescription(),
					})
				}
				return table(c.stdout, "ENDPOINT\tURL\tEVENTS\tDELIVERED UP TO\tSTATE\tDESCRIPTION", rows)
			}
		},
	}
}

func webhooksUpdateCmd() *command {
	return &command{
		name: "webhooks update", synopsis: "ENDPOINT_ID [--url URL] [--types T1,T2|all] [--description TEXT] [--enable | --disable]",
		summary: "change an endpoint; --enable resumes its deliveries where they stopped",
		setup: func(fs *flag.FlagSet) runFunc {
			url := fs.String("url", "", "new URL")
			types := fs.String("types", "", "new event types, comma-separated, or all")
			desc := fs.String("description", "", "new description")
			enable := fs.Bool("enable", false, "enable the endpoint")
			disable := fs.Bool("disable", false, "disable the endpoint")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 1, "ENDPOINT_ID")
				if err != nil {
					return err
				}
				e := &pb.WebhookEndpoint{}
				var paths []string
				fs.Visit(func(f *flag.Flag) {
					switch f.Name {
					case "url":
						e.Url, paths = *url, append(paths, "url")
					case "types":
						if *types != "all" {
							e.EventTypes = typesFlag(*types)
						}
						paths = append(paths, "event_types")
					case "description":
						e.Description, paths = *desc, append(paths, "description")
					}
				})
				switch {
				case *enable && *disable:
					return usagef("give --enable or --disable, not both")
				case *enable || *disable:
					e.Enabled, paths = *enable, append(paths, "enabled")
				}
				if len(paths) == 0 {
					return usagef("nothing to change: give --url, --types, --description, --enable or --disable")
				}
				res, err := l.Webhooks().UpdateWebhookEndpoint(ctx, &pb.UpdateWebhookEndpointRequest{
					Workspace: ws, EndpointId: args[0], WebhookEndpoint: e, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
				})
				if err != nil {
					return err
				}
				u := res.GetWebhookEndpoint()
				state := "enabled"
				if !u.GetEnabled() {
					state = "disabled"
				}
				_, _ = fmt.Fprintf(c.stdout, "webhook endpoint %s: %s, events %s, %s\n", u.GetId(), cell(u.GetUrl()), cell(endpointTypes(u)), state)
				return nil
			}
		},
	}
}

func webhooksDeleteCmd() *command {
	return &command{
		name: "webhooks delete", synopsis: "ENDPOINT_ID",
		summary: "remove an endpoint and its delivery log; its deliveries stop",
		setup: func(*flag.FlagSet) runFunc {
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 1, "ENDPOINT_ID")
				if err != nil {
					return err
				}
				if _, err := l.Webhooks().DeleteWebhookEndpoint(ctx, &pb.DeleteWebhookEndpointRequest{Workspace: ws, EndpointId: args[0]}); err != nil {
					return err
				}
				_, _ = fmt.Fprintf(c.stdout, "webhook endpoint %s deleted\n", cell(args[0]))
				return nil
			}
		},
	}
}

func webhooksDeliveriesCmd() *command {
	return &command{
		name: "webhooks deliveries", synopsis: "ENDPOINT_ID [--limit N]",
		summary: "an endpoint's delivery attempts, newest first, with status and latency",
		setup: func(fs *flag.FlagSet) runFunc {
			limit := fs.Int("limit", 20, "attempts to show (at most 500)")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 1, "ENDPOINT_ID")
				if err != nil {
					return err
				}
				if *limit < 1 || *limit > 500 {
					return usagef("--limit must be within 1..500")
				}
				res, err := l.Webhooks().ListWebhookDeliveries(ctx, &pb.ListWebhookDeliveriesRequest{
					Workspace: ws, EndpointId: args[0], PageSize: int32(*limit), //nolint:gosec // G115: bounded just before
				})
				if err != nil {
					return err
				}
				var rows [][]string
				for _, d := range res.GetWebhookDeliveries() {
					outcome := "ok"
					if !d.GetSucceeded() {
						outcome = d.GetError()
					}
					status := "-"
					if d.GetStatusCode() != 0 {
						status = strconv.Itoa(int(d.GetStatusCode()))
					}
					rows = append(rows, []string{
						formatTime(d.GetAttemptTime()), strconv.FormatInt(d.GetEventSequence(), 10), d.GetEventType(),
						strconv.Itoa(int(d.GetAttempt())), status, d.GetLatency().AsDuration().Round(100_000).String(), outcome,
					})
				}
				return table(c.stdout, "TIME\tSEQUENCE\tEVENT\tATTEMPT\tSTATUS\tLATENCY\tOUTCOME", rows)
			}
		},
	}
}
