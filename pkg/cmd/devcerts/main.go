// Command devcerts writes the development certificate set: a CA (kept while it stays valid),
// one short-lived workload certificate per service with its SPIFFE ID, and the HTTPS
// certificate of the browser-facing servers. `make certs` and the local launcher run it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/forgeapps/backbone/pkg/devca"
	"github.com/forgeapps/backbone/pkg/workload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "devcerts:", err)
		os.Exit(1)
	}
}

// workloads are the identities that get a certificate: the services of the repository and
// the external workloads that call them.
func workloads() []string {
	return append(workload.Services(), workload.Billing, workload.Builder)
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("devcerts", flag.ContinueOnError)
	fs.SetOutput(stdout)
	dir := fs.String("dir", ".dev/certs", "folder for the CA and the certificates (created 0700)")
	trustDomain := fs.String("trust-domain", workload.DefaultTrustDomain, "SPIFFE trust domain of the workload IDs")
	validity := fs.Duration("validity", devca.DefaultValidity, "lifetime of the leaf certificates")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	// Generating keys is quick; the context only stops a run that was interrupted before it began.
	if err := ctx.Err(); err != nil {
		return err
	}
	names := workloads()
	if err := devca.WriteDir(*dir, *trustDomain, names, *validity); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		abs = *dir
	}
	_, err = fmt.Fprintf(stdout, "wrote a CA, %d workload certificates (valid %s) and the edge certificate to %s\n",
		len(names), validity.String(), abs)
	return err
}
