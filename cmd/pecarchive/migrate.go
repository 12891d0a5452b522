package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/pecarchive/pecarchive/services/archive"
)

func init() {
	register("migrate", "apply the catalog and log schema migrations (under an advisory lock)", runMigrate)
}

func runMigrate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "config file of PECARCHIVE_* settings (environment overrides it)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	s, err := loadSettings(*config)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive migrate: %v\n", err)
		return exitUsage
	}
	ctx := context.Background()
	pool, err := s.openPool(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive migrate: %v\n", err)
		return exitNotValid
	}
	defer pool.Close()
	if err := archive.Migrate(ctx, pool); err != nil {
		fmt.Fprintf(stderr, "pecarchive migrate: %v\n", err)
		return exitNotValid
	}
	fmt.Fprintf(stdout, "migrate: schema %s up to date\n", s.get("PECARCHIVE_PG_SCHEMA", "pecarchive"))
	return exitOK
}
