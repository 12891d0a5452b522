package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/pecarchive/pecarchive/tlog"
)

func init() {
	register("logkey", "create the log's checkpoint signing key, or print its public key", runLogKey)
}

// Environment variables that carry the log's secret key (secrets come only from files or the
// environment, never from flags).
const (
	envLogKey     = "PECARCHIVE_LOG_KEY"
	envLogKeyFile = "PECARCHIVE_LOG_KEY_FILE"
)

func runLogKey(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: pecarchive logkey generate --origin ORIGIN --out FILE | pecarchive logkey public [--key-file FILE]")
		return exitUsage
	}
	switch args[0] {
	case "generate":
		fs := flag.NewFlagSet("logkey generate", flag.ContinueOnError)
		fs.SetOutput(stderr)
		origin := fs.String("origin", "", "log origin, the first line of every checkpoint (for example archive.example.org/pec)")
		out := fs.String("out", "", "file to create for the secret key (mode 0600; never overwritten)")
		if err := fs.Parse(args[1:]); err != nil {
			return exitUsage
		}
		if *origin == "" || *out == "" {
			fmt.Fprintln(stderr, "pecarchive logkey generate: --origin and --out are required")
			return exitUsage
		}
		skey, vkey, err := tlog.GenerateKey(*origin)
		if err != nil {
			fmt.Fprintf(stderr, "pecarchive logkey: %v\n", err)
			return exitUsage
		}
		if err := writeSecretFile(*out, []byte(skey+"\n")); err != nil {
			fmt.Fprintf(stderr, "pecarchive logkey: %v\n", err)
			return exitUsage
		}
		fmt.Fprintln(stdout, vkey)
		return exitOK
	case "public":
		fs := flag.NewFlagSet("logkey public", flag.ContinueOnError)
		fs.SetOutput(stderr)
		file := fs.String("key-file", "", "secret key file (default: $"+envLogKeyFile+", the key in $"+envLogKey+", or the data folder's log.key)")
		config := fs.String("config", "", "config file of PECARCHIVE_* settings (environment overrides it)")
		if err := fs.Parse(args[1:]); err != nil {
			return exitUsage
		}
		s, err := loadSettings(*config)
		if err != nil {
			fmt.Fprintf(stderr, "pecarchive logkey: %v\n", err)
			return exitUsage
		}
		if *file != "" {
			s[envLogKeyFile] = *file
		}
		skey, err := s.logKey(false)
		if err != nil {
			fmt.Fprintf(stderr, "pecarchive logkey: %v\n", err)
			return exitUsage
		}
		vkey, err := tlog.VerifierKey(skey)
		if err != nil {
			fmt.Fprintf(stderr, "pecarchive logkey: %v\n", err)
			return exitUsage
		}
		fmt.Fprintln(stdout, vkey)
		return exitOK
	}
	fmt.Fprintf(stderr, "pecarchive logkey: unknown subcommand %q\n", args[0])
	return exitUsage
}

// writeSecretFile creates path with mode 0600, refusing to overwrite an existing file.
func writeSecretFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
