package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/reader"
	"github.com/pecarchive/pecarchive/services/ingest"
)

// Settings of the client commands that hand messages to the archive (import, ingest):
//
//	PECARCHIVE_ARCHIVE_ADDR         host:port of a running archive service; unset: open the archive in-process
//	PECARCHIVE_ARCHIVE_TOKEN_FILE   bearer token for it (or PECARCHIVE_ARCHIVE_TOKEN)
//	PECARCHIVE_ARCHIVE_CA_FILE      CA of its server certificate; with it the connection uses TLS
//	PECARCHIVE_ARCHIVE_CERT_FILE, PECARCHIVE_ARCHIVE_KEY_FILE   client certificate for mTLS

// openArchiver returns the archive as an ingest.Archiver: a client of the service at
// PECARCHIVE_ARCHIVE_ADDR when it is set, otherwise the archive opened in-process from the same
// settings (embedded defaults: local PostgreSQL, write-once files). close releases it.
func (s settings) openArchiver(ctx context.Context) (a ingest.Archiver, close func(), err error) {
	if addr := s.get("PECARCHIVE_ARCHIVE_ADDR", ""); addr != "" {
		conn, client, err := s.dialArchive(addr)
		if err != nil {
			return nil, nil, err
		}
		return ingest.NewRemote(client, nil), func() { conn.Close() }, nil
	}
	loc, cleanup, err := s.openLocal(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	return localArchiver{loc.Archive, loc.Reader}, cleanup, nil
}

// secret returns the value of the setting NAME_FILE (the file's content, trimmed) or NAME, or "".
func (s settings) secret(name string) (string, error) {
	if f := s.get(name+"_FILE", ""); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("%s_FILE: %w", name, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return strings.TrimSpace(s.get(name, "")), nil
}

// openArchive opens the archive in-process from the settings (see openLocal). cleanup closes the
// archive, then the pool.
func (s settings) openArchive(ctx context.Context, cfg *archive.Config) (a *archive.Archive, cleanup func(), err error) {
	loc, cleanup, err := s.openLocal(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return loc.Archive, cleanup, nil
}

// localArchiver is an ingest.Archiver on an archive opened in-process, looking records up
// through its reader.
type localArchiver struct {
	a  *archive.Archive
	rd *reader.Reader
}

func (l localArchiver) Store(ctx context.Context, raw []byte, src ingest.Source) (ingest.Stored, error) {
	r, err := l.a.Store(ctx, raw, archive.Source{Mailbox: src.Mailbox, Folder: src.Folder,
		UIDValidity: src.UIDValidity, UID: src.UID, InternalDate: src.InternalDate, Path: src.Path})
	if err != nil {
		return ingest.Stored{}, localErr("store", err)
	}
	return storedOf(r), nil
}

// Lookup confirms the catalog row and that the blob store holds the exact bytes (read back and
// re-hashed; for a postacert.eml, extracted from the message carrying it): ingest deletes from a
// mailbox only what it confirms.
func (l localArchiver) Lookup(ctx context.Context, sum [32]byte) (ingest.Stored, error) {
	r, err := l.rd.Get(ctx, sum)
	if err != nil {
		return ingest.Stored{}, localErr("look up", err)
	}
	// Read the bytes back: the reader re-hashes them and fails at EOF on a mismatch.
	rc, err := l.rd.Open(ctx, sum)
	if errors.Is(err, reader.ErrNotFound) {
		return ingest.Stored{}, fmt.Errorf("%w: look up: %x is catalogued but its blob is missing: %w", ingest.ErrNotArchived, sum[:8], err)
	}
	if err != nil {
		return ingest.Stored{}, localErr("look up blob", err)
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil {
		return ingest.Stored{}, fmt.Errorf("%w: look up: %x: its bytes cannot be read back: %w", ingest.ErrNotArchived, sum[:8], err)
	}
	return storedOf(archive.Record{Message: r.Message}), nil
}

func localErr(op string, err error) error {
	switch {
	case errors.Is(err, archive.ErrInvalid):
		return fmt.Errorf("%w: %s: %w", ingest.ErrRefused, op, err)
	case errors.Is(err, archive.ErrNotFound), errors.Is(err, reader.ErrNotFound):
		return fmt.Errorf("%w: %s: %w", ingest.ErrNotArchived, op, err)
	case errors.Is(err, archive.ErrUnavailable), errors.Is(err, archive.ErrClosed), errors.Is(err, reader.ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %s: %w", ingest.ErrUnavailable, op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func storedOf(r archive.Record) ingest.Stored {
	return ingest.Stored{SHA256: r.SHA256, Size: r.Size, New: r.New, LeafIndex: r.LeafIndex,
		Kind: string(r.Kind), Valid: r.Verdict.Valid, Trusted: r.Verdict.Trusted, Problems: r.Problems}
}
