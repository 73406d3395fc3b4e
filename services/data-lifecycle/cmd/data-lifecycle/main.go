// Command data-lifecycle serves export jobs, deletions and purges (`serve`, the default),
// applies its migrations (`migrate`), backs up every service database (`backup`, run by a
// CronJob), restores one dump (`restore`) and replays the deletion ledger after a restore
// (`replay-ledger`).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/forgeapps/backbone/pkg/service"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/backup"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/config"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "data-lifecycle:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "backup", "restore", "prune", "replay-ledger":
			return backup.Main(ctx, args, getenv, stdout)
		}
	}
	if len(args) > 0 && args[0] == "migrate" {
		// The migration Job has no dependency addresses or keys: it needs the shared settings only.
		base, err := service.LoadBase(config.Name, getenv)
		if err != nil {
			return err
		}
		return service.Main(ctx, args, stdout, server.Spec(config.Config{Base: base}), nil)
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	return service.Main(ctx, args, stdout, server.Spec(cfg), server.Setup(cfg, lifecycle.SystemClock{}))
}
