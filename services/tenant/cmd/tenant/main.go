// Command tenant runs the tenant service: accounts, sign-in sessions, the credit ledger and
// the region directory. `tenant serve` (the default) serves gRPC over mTLS; `tenant migrate`
// applies the schema's migrations as the migration role and exits.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/events"
	"github.com/forgeapps/backbone/pkg/service"

	"github.com/forgeapps/backbone/services/tenant/internal/config"
	tenantevents "github.com/forgeapps/backbone/services/tenant/internal/events"
	"github.com/forgeapps/backbone/services/tenant/internal/grpcapi"
	"github.com/forgeapps/backbone/services/tenant/internal/postgres"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tenant:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	spec := service.Spec{
		Base:  cfg.Base,
		Table: grpcapi.Table(),
		Database: &service.Database{
			Schema:  postgres.Schema,
			Sources: postgres.Sources(),
			Posture: postgres.Posture(),
		},
		Events: true,
	}
	return service.Main(ctx, args, stdout, spec, func(_ context.Context, rt *service.Runtime) (func(grpc.ServiceRegistrar), error) {
		store, err := postgres.NewStore(rt.DB, rt.Outbox, postgres.Options{
			Region:     rt.Base.Region,
			SessionTTL: cfg.SessionTTL,
		})
		if err != nil {
			return nil, err
		}
		purge := tenantevents.NewPurgeConsumer(store, cfg.PurgeBatchSize, rt.Logger)
		rt.Go("purge consumer", func(ctx context.Context) error {
			cc := purge.Config()
			cc.Meter, cc.Tracer, cc.Propagator = rt.Telemetry.Meter, rt.Telemetry.Tracer, rt.Telemetry.Propagator
			cc.DeadLetter = func(ctx context.Context, dl events.DeadLetter) error { return events.RecordDeadLetter(ctx, rt.DB, dl) }
			return events.Consume(ctx, rt.JetStream, cc)
		})
		return grpcapi.New(store).Register, nil
	})
}
