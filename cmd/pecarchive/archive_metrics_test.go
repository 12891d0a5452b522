package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pecarchive/pecarchive/services/archive/merklelog/merklelogtest"
	"github.com/pecarchive/pecarchive/tlog"
)

// TestArchiveMetricsOnRefusal is attack 1 seen from outside: the archive service runs with its
// metrics, an insider rewrites a signed leaf and appends one more, recomputing the tree, and the
// service's next checkpoint is refused: checkpoints_refused_total goes to 1 (besides the error
// it logs), so an alert can fire.
func TestArchiveMetricsOnRefusal(t *testing.T) {
	serviceEnv(t)
	if err := storeSome(t, 2, "metrics"); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	t.Setenv(envArchiveMetrics, addr)
	t.Setenv("PECARCHIVE_CHECKPOINT_INTERVAL", "100ms")
	s, err := loadSettings("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveArchive(ctx, s, "127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() {
		cancel()
		<-done
	}()
	counter := func(name string) (string, bool) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return "", false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				return v, true
			}
		}
		return "", false
	}
	waitFor := func(name, want string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			v, ok := counter(name)
			if ok && v == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s = %q (served %v), want %s", name, v, ok, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("pecarchive_archive_checkpoints_refused_total", "0")

	pool, err := s.openPool(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	forged := tlog.Leaf{Kind: tlog.KindMessage, SHA256: [32]byte{1}, Time: time.Unix(1.7e9, 0), Extra: "forged"}.Marshal()
	more := tlog.Leaf{Kind: tlog.KindMessage, SHA256: [32]byte{2}, Time: time.Unix(1.7e9, 0), Extra: "more"}.Marshal()
	err = merklelogtest.AsOwner(context.Background(), pool, nil, func(tx pgx.Tx) error {
		if _, err := tx.Exec(context.Background(), `UPDATE merklelog_leaf SET data = $1 WHERE idx = 0`, forged); err != nil {
			return err
		}
		h := tlog.LeafHash(more)
		if _, err := tx.Exec(context.Background(), `INSERT INTO merklelog_leaf (idx, data, hash) SELECT max(idx) + 1, $1, $2 FROM merklelog_leaf`, more, h[:]); err != nil {
			return fmt.Errorf("append: %w", err)
		}
		return merklelogtest.Rebuild(context.Background(), tx)
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor("pecarchive_archive_checkpoints_refused_total", "1")
}
