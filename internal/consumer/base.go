package consumer

import (
	"time"

	"go.uber.org/zap"
)

// Base is what a service's App is built on, alike in every service: its
// log, its clock, its API helper and the follower of the ledger's events.
// An App embeds it.
type Base struct {
	Log    *zap.Logger
	Now    func() time.Time
	API    *API
	Events *Follower // nil for a service that follows no events
}

// BaseConfig configures NewBase.
type BaseConfig struct {
	// Name is the service's (see APIConfig).
	Name string
	// Log is the service's log; none when nil.
	Log *zap.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Verifier and NoAuth say who may call the API (see APIConfig).
	Verifier Verifier
	NoAuth   bool
	// Events configures the follower of the ledger's events, whose Log is
	// Base's; without Events.Handle there is none.
	Events FollowerConfig
}

// NewBase returns the Base of a service's App.
func NewBase(c BaseConfig) (Base, error) {
	b := Base{Log: c.Log, Now: c.Now}
	if b.Log == nil {
		b.Log = zap.NewNop()
	}
	if b.Now == nil {
		b.Now = time.Now
	}
	var err error
	if b.API, err = NewAPI(APIConfig{Name: c.Name, Log: b.Log, Verifier: c.Verifier, NoAuth: c.NoAuth}); err != nil {
		return Base{}, err
	}
	if c.Events.Handle != nil {
		c.Events.Log = b.Log
		if b.Events, err = NewFollower(c.Events); err != nil {
			return Base{}, err
		}
	}
	return b, nil
}
