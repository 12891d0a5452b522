// Package pgerr owns the one rule that sorts PostgreSQL errors by kind: whether an error means
// the server (or the path to it) is not usable right now, so the same statement may succeed
// later, as opposed to a bad statement or a constraint the data broke. The packages that talk to
// PostgreSQL (the catalog's readers, the log, the archive's committer) wrap such errors as their
// own "unavailable" kind with it, so that no layer above them needs to know pgx's errors.
package pgerr

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Transient reports whether err means PostgreSQL is not usable right now: the connection could
// not be made or broke, the server is shutting down or out of resources, a timeout (of the
// statement, or of a context deadline), or a serialization failure, deadlock or lock timeout that
// a retry of the whole transaction resolves.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case len(pe.Code) == 5 && (pe.Code[:2] == "08" || pe.Code[:2] == "53" || pe.Code[:2] == "58"):
			return true // connection exception, insufficient resources, system error
		case pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", pe.Code == "57014":
			return true // admin/crash shutdown, cannot connect now, query canceled (statement timeout)
		case pe.Code == "40001", pe.Code == "40P01", pe.Code == "55P03", pe.Code == "25P03":
			return true // serialization failure, deadlock, lock not available, idle tx timeout
		}
		return false
	}
	// A connection that broke mid-transaction, or a pool closed under us.
	return errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, pgx.ErrTxClosed) || strings.Contains(err.Error(), "closed pool")
}

// UndefinedTable reports whether err is PostgreSQL's undefined_table (42P01): the schema was not
// migrated.
func UndefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P01"
}

// Code returns the SQLSTATE of err, or "" when err carries none.
func Code(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
