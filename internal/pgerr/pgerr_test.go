package pgerr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pecarchive/pecarchive/internal/pgerr"
)

func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("syntax"), false},
		{&pgconn.PgError{Code: "23505"}, false}, // unique violation: the data, not the server
		{&pgconn.PgError{Code: "42P01"}, false},
		{&pgconn.PgError{Code: "57P01"}, true},
		{&pgconn.PgError{Code: "40001"}, true},
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "53300"}, true},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), true},
		{io.ErrUnexpectedEOF, true},
		{fmt.Errorf("commit: %w", pgconn.ErrConnClosed), true},
	} {
		if got := pgerr.Transient(tc.err); got != tc.want {
			t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if !pgerr.UndefinedTable(fmt.Errorf("x: %w", &pgconn.PgError{Code: "42P01"})) || pgerr.UndefinedTable(errors.New("x")) {
		t.Error("UndefinedTable")
	}
	if pgerr.Code(fmt.Errorf("x: %w", &pgconn.PgError{Code: "23503"})) != "23503" || pgerr.Code(errors.New("x")) != "" {
		t.Error("Code")
	}
}
