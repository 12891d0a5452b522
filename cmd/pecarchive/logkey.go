package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"

	"github.com/pecarchive/pecarchive/tlog"
)

func init() {
	register("logkey", "create the log's checkpoint signing key, or print its public key", runLogKey)
}

// Environment variables that carry the log's secret key (secrets come only from files or the
// environment, never from flags), and the file of the public keys it signed with before a
// rotation.
const (
	envLogKey      = "PECARCHIVE_LOG_KEY"
	envLogKeyFile  = "PECARCHIVE_LOG_KEY_FILE"
	envLogOldKeys  = "PECARCHIVE_LOG_OLD_KEYS_FILE"
	defaultOrigin  = "pecarchive.local/log"
	envLogOrigin   = "PECARCHIVE_LOG_ORIGIN"
	maxKeyFileSize = 1 << 20
)

// errNoLogKey: no signing key is configured and DATA_DIR/log.key does not exist.
var errNoLogKey = errors.New("no log key")

// Keys. The log's checkpoints are signed with one Ed25519 key whose name is the log's origin.
// A key is made only by "pecarchive logkey generate", or, on embedded defaults, as
// DATA_DIR/log.key for a log that is still empty (no leaf, no checkpoint in the database or on
// write-once storage). A log that holds anything and has no key is refused by every command
// that would sign, with the reason: a new key would silently start a log nobody can check
// against what was signed before. A key that does not verify the log's latest checkpoint (the
// key file replaced) is refused by the archive at start-up (merklelog.ErrWrongKey).
//
// Rotation keeps the origin and lists the old public keys: old checkpoints stay verifiable with
// them, and the archive checks the latest one with them before it signs on with the new key.
// See README, "Log keys".

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
		skey, err := s.logKey()
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

// createLogKey creates DATA_DIR/log.key (origin PECARCHIVE_LOG_ORIGIN) for an empty log: no
// leaf and no checkpoint, in the database or on blobs' write-once storage. Otherwise it refuses
// and says why.
func (s settings) createLogKey(ctx context.Context, pool *pgxpool.Pool, blobs blob.Store) (string, error) {
	f := filepath.Join(s.dataDir(), "log.key")
	held, err := logContents(ctx, pool, blobs)
	if err != nil {
		return "", err
	}
	if held != "" {
		return "", fmt.Errorf("%w, and the log already holds %s: a new key would sign a log nobody could check against "+
			"what was signed before. Restore the key file (%s, or set %s or %s); to replace a lost key on purpose, "+
			"create one with \"pecarchive logkey generate\" and list the old public key in %s (README, \"Log keys\")",
			errNoLogKey, held, f, envLogKeyFile, envLogKey, envLogOldKeys)
	}
	skey, _, err := tlog.GenerateKey(s.get(envLogOrigin, defaultOrigin))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(s.dataDir(), 0o750); err != nil {
		return "", err
	}
	if err := writeSecretFile(f, []byte(skey+"\n")); err != nil {
		return "", err
	}
	return skey, nil
}

// logContents says what the log holds ("" when it is empty): leaves, and checkpoints in the
// database or on blobs' write-once storage.
func logContents(ctx context.Context, pool *pgxpool.Pool, blobs blob.Store) (string, error) {
	l, err := merklelog.New(ctx, merklelog.Config{Pool: pool})
	if err != nil {
		return "", err
	}
	var held []string
	size, err := l.Size(ctx)
	if err != nil {
		return "", err
	}
	if size > 0 {
		held = append(held, fmt.Sprintf("%d leaves", size))
	}
	if _, err := l.Checkpoint(ctx); err == nil {
		held = append(held, "signed checkpoints in the database")
	} else if !errors.Is(err, merklelog.ErrNotFound) {
		return "", err
	}
	if cps, ok := blobs.(merklelog.CheckpointStore); ok {
		found := errors.New("found")
		err := cps.Checkpoints(ctx, 0, func(blob.Checkpoint) error { return found })
		if errors.Is(err, found) {
			held = append(held, "signed checkpoints on write-once storage")
		} else if err != nil {
			return "", err
		}
	}
	return strings.Join(held, " and "), nil
}

// oldLogKeys reads PECARCHIVE_LOG_OLD_KEYS_FILE: the public keys the log signed with before its
// key was rotated, one per line.
func (s settings) oldLogKeys() ([]note.Verifier, error) {
	f := s.get(envLogOldKeys, "")
	if f == "" {
		return nil, nil
	}
	text, err := readSmallFile(f, maxKeyFileSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envLogOldKeys, err)
	}
	vs, err := tlog.ParseVerifierKeys(string(text))
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", envLogOldKeys, f, err)
	}
	return vs, nil
}
