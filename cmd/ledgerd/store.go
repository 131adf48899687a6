package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/creditledger/creditledger/internal/config"
	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/store/postgres"
	"github.com/creditledger/creditledger/internal/store/sqlite"
)

// openStore opens PostgreSQL when a database URL is configured, else the
// embedded store under the data directory, and says which one in the log.
// It also returns how the write path batches on that store: on PostgreSQL
// as many batches in flight as the pool has connections, two per
// workspace (one reads while the other commits); on the embedded store,
// whose single writer commits one batch at a time, one.
//
// Serving refuses a PostgreSQL role that row-level security does not hold
// (see checkSessionRole).
func openStore(ctx context.Context, cfg config.Config, log *zap.Logger) (ledger.Store, ledger.BatchOptions, error) {
	return openStoreAs(ctx, cfg, log, true)
}

// openStoreAs is openStore; serving selects the check of the session role.
func openStoreAs(ctx context.Context, cfg config.Config, log *zap.Logger, serving bool) (ledger.Store, ledger.BatchOptions, error) {
	bo := ledger.BatchOptions{MaxOps: cfg.BatchMaxOps, PerWorkspace: cfg.BatchPerWorkspace}
	if cfg.DatabaseURL != "" {
		redacted := config.RedactURL(cfg.DatabaseURL)
		if cfg.MigrateOnStart {
			if err := migratePostgres(ctx, cfg, log); err != nil {
				return nil, bo, err
			}
		}
		pooler, err := postgres.ParsePooler(cfg.DatabasePooler)
		if err != nil {
			return nil, bo, fmt.Errorf("%s: %w", config.EnvDatabasePooler, err)
		}
		s, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{
			MaxConns:            int32(cfg.DBMaxConns), //nolint:gosec // G115: validated non-negative, a pool size
			Pooler:              pooler,
			ReadURLs:            cfg.ReadDatabaseURLs,
			MaxReplicaLagBytes:  cfg.ReadMaxLagBytes,
			AllowPrivilegedRole: cfg.DBAllowPrivilegedRole,
			OnReplicaState: func(r postgres.ReplicaStat) {
				f := []zap.Field{zap.String("replica", r.Name), zap.String("state", r.State), zap.Int64("lag_bytes", r.LagBytes)}
				if r.Usable {
					log.Info("read replica serves reads", f...)
				} else {
					log.Warn("read replica does not serve reads: the primary serves them", f...)
				}
			},
		})
		if errors.Is(err, postgres.ErrBehindPooler) {
			return nil, bo, fmt.Errorf("open PostgreSQL at %s: %w: set %s=%s", redacted, err,
				config.EnvDatabasePooler, config.PoolerTransaction)
		}
		if err != nil {
			return nil, bo, fmt.Errorf("open PostgreSQL at %s: %w", redacted, err)
		}
		if serving {
			if err := checkSessionRole(ctx, cfg, s, log); err != nil {
				_ = s.Close()
				return nil, bo, err
			}
		}
		bo.MaxInFlight = int(s.Pool().Config().MaxConns)
		log.Info("store opened", zap.String("store", "postgres"), zap.String("database_url", redacted),
			zap.String("pooler", string(pooler)), zap.Int("max_batches_in_flight", bo.MaxInFlight), zap.Int("read_replicas", len(cfg.ReadDatabaseURLs)))
		return s, bo, nil
	}
	path, err := embeddedPath(cfg)
	if err != nil {
		return nil, bo, err
	}
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return nil, bo, fmt.Errorf("open the embedded store at %s: %w", path, err)
	}
	bo.MaxInFlight = 1
	if bo.PerWorkspace == 0 {
		bo.PerWorkspace = 1
	}
	log.Info("store opened", zap.String("store", "embedded"), zap.String("path", path))
	return s, bo, nil
}

// embeddedPath creates the data directory (owner only) and names the file.
func embeddedPath(cfg config.Config) (string, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	return cfg.EmbeddedPath(), nil
}

// migrate applies the PostgreSQL migrations, or creates (and migrates) the
// embedded store's file.
func migrate(ctx context.Context, cfg config.Config, log *zap.Logger) error {
	if cfg.DatabaseURL != "" || cfg.MigrateDatabaseURL != "" {
		return migratePostgres(ctx, cfg, log)
	}
	path, err := embeddedPath(cfg)
	if err != nil {
		return err
	}
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return fmt.Errorf("open the embedded store at %s: %w", path, err)
	}
	if err := s.Close(); err != nil {
		return err
	}
	log.Info("migrations applied", zap.String("store", "embedded"), zap.String("path", path))
	return nil
}

// migratePostgres applies the migrations as the owner (LEDGER_MIGRATE_DATABASE_URL,
// else LEDGER_DATABASE_URL) and creates or checks the runtime role.
func migratePostgres(ctx context.Context, cfg config.Config, log *zap.Logger) error {
	redacted := config.RedactURL(cfg.MigrateURL())
	role := postgres.RuntimeRole{Name: cfg.RuntimeRoleName(), Password: cfg.RuntimeRolePassword}
	// A database started with ledgerd (compose, a Job) may not accept
	// connections yet: keep trying for cfg.MigrateWait, and only then.
	deadline := time.Now().Add(cfg.MigrateWait)
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := postgres.MigrateRole(ctx, cfg.MigrateURL(), role)
		if err == nil {
			break
		}
		if !errors.Is(err, ledger.ErrUnavailable) || time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("migrate PostgreSQL at %s: %w", redacted, err)
		}
		log.Warn("PostgreSQL is not reachable yet; migrate tries again", zap.String("database_url", redacted),
			zap.Duration("in", wait), zap.Time("until", deadline), zap.Error(err))
		select {
		case <-ctx.Done():
			return fmt.Errorf("migrate PostgreSQL at %s: %w", redacted, ctx.Err())
		case <-time.After(wait):
		}
	}
	log.Info("migrations applied", zap.String("store", "postgres"), zap.String("database_url", redacted),
		zap.String("runtime_role", cfg.RuntimeRoleName()), zap.Bool("runtime_role_password_set", cfg.RuntimeRolePassword != ""))
	return nil
}

// checkSessionRole refuses to serve as a role that row-level security does
// not hold (a superuser, a BYPASSRLS role, the tables' owner): one missing
// workspace filter would then show one workspace's data to another. With
// LEDGER_DB_ALLOW_PRIVILEGED_ROLE=true it serves anyway, saying so loudly
// (development against a database with one role).
func checkSessionRole(ctx context.Context, cfg config.Config, s *postgres.Store, log *zap.Logger) error {
	r, err := s.SessionRole(ctx)
	if err != nil {
		return err
	}
	if !r.BypassesRLS() {
		log.Info("database role checked", zap.String("role", r.Name), zap.Bool("row_level_security", true))
		return nil
	}
	why := "it owns the tables"
	switch {
	case r.Superuser:
		why = "it is a superuser"
	case r.BypassRLS:
		why = "it has BYPASSRLS"
	}
	if !cfg.DBAllowPrivilegedRole {
		return fmt.Errorf("the database role %q is not held by row-level security (%s): serve as the runtime role "+
			"%q that `ledgerd migrate` creates (%s), or set %s=true for development",
			r.Name, why, cfg.RuntimeRoleName(), config.EnvRuntimeRole, config.EnvDBAllowPrivilegedRole)
	}
	log.Error("SERVING AS A DATABASE ROLE THAT BYPASSES ROW-LEVEL SECURITY: workspaces are not isolated by the database; "+
		"never do this in production", zap.String("role", r.Name), zap.String("reason", why),
		zap.String("setting", config.EnvDBAllowPrivilegedRole))
	return nil
}
