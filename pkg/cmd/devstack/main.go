// Command devstack runs the suite locally (`devstack up`, behind `make run`), makes sure
// PostgreSQL and NATS are running for the tests (`devstack ensure`, behind `make test`), and
// deletes the local stack's data (`devstack reset`, behind `make reset`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/forgeapps/backbone/pkg/devstack"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: devstack up|ensure|reset [flags]")
	}
	logger := telemetry.NewLogger(stdout, "devstack", slog.LevelInfo)
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	root := fs.String("root", ".", "repository root")
	services := fs.String("services", "", "space-separated services to run")
	region := fs.String("region", string(owner.DefaultRegion), "region to run")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "ensure":
		deps := devstack.Deps{Logger: logger, StateDir: *root + "/.dev"}
		if _, _, err := deps.EnsurePostgres(ctx, ""); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		if err := deps.EnsureLocalNATS(ctx); err != nil {
			return fmt.Errorf("nats: %w", err)
		}
		return nil
	case "reset":
		return devstack.Reset(ctx, devstack.ResetConfig{
			StateDir: *root + "/.dev",
			AdminURL: getenv("DATABASE_URL"),
			Logger:   logger,
		})
	case "up":
		r, err := owner.ParseRegion(*region)
		if err != nil {
			return err
		}
		return devstack.Up(ctx, devstack.Config{
			Root:     *root,
			Services: strings.Fields(*services),
			Region:   r,
			AdminURL: getenv("DATABASE_URL"),
			NATSURL:  getenv("NATS_URL"),
			Stdout:   stdout,
			Logger:   logger,
		})
	}
	return fmt.Errorf("unknown command %q", args[0])
}
