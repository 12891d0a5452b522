package mailfile_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pecarchive/pecarchive/services/ingest/mailfile"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

type item struct {
	msg mailfile.Message
	err error
}

func readAll(t *testing.T, paths []string, opts *mailfile.Options) map[string][]item {
	t.Helper()
	got := map[string][]item{}
	for m, err := range mailfile.Read(context.Background(), paths, opts) {
		got[m.Path] = append(got[m.Path], item{m, err})
	}
	return got
}

func TestReadTree(t *testing.T) {
	root := t.TempDir()
	j := func(p ...string) string { return filepath.Join(append([]string{root}, p...)...) }
	big := "Subject: big\n\n" + strings.Repeat("x", 3000) + "\n"
	write(t, j("a.eml"), "Subject: a\r\n\r\na\r\n")
	write(t, j("sub", "b.EML"), "\x00 binary junk named .eml")
	write(t, j("sub", "deeper", "17"), "Return-Path: <x@example.it>\nSubject: c\n\nc\n")
	write(t, j("notes.txt"), "hello world\n")
	write(t, j("box"), "From a\nSubject: 4\n\n>From four\n\nFrom b\r\nSubject: 5\r\n\r\n")
	write(t, j("empty.mbox"), "")
	write(t, j("empty.eml"), "")
	write(t, j("big.eml"), big)
	write(t, j("Maildir", "cur", "1:2,S"), "Subject: 6\n\n")
	write(t, j("Maildir", "cur", ".hidden"), "Subject: not read\n\n")
	write(t, j("Maildir", "new", "2"), "not even a header, but in new/\n")
	write(t, j("Maildir", "tmp", "3"), "Subject: being delivered\n\n")
	write(t, j("Maildir", "dovecot-uidlist"), "3 V1 N3\n")
	write(t, j("Maildir", ".Sent", "cur", "8:2,"), "Subject: 8\n\n")
	os.MkdirAll(j("Maildir", ".Sent", "new"), 0o755)
	os.MkdirAll(j("Maildir", ".Sent", "tmp"), 0o755)
	os.MkdirAll(j("Maildir", "cur", "a-folder"), 0o755)
	if err := os.Symlink(root, j("sub", "loop")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(j("self"), j("self")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(j("a.eml"), j("sub", "link.eml")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(j("fifo.eml"), 0o644); err != nil {
		t.Fatal(err)
	}

	got := readAll(t, []string{root}, &mailfile.Options{MaxSize: 2000})
	ok := func(rel string, format mailfile.Format, raws ...string) {
		t.Helper()
		items := got[j(rel)]
		if len(items) != len(raws) {
			t.Errorf("%s: %d items, want %d: %v", rel, len(items), len(raws), items)
			return
		}
		for i, it := range items {
			if it.err != nil || string(it.msg.Raw) != raws[i] || it.msg.Format != format || it.msg.Index != i || it.msg.Size != int64(len(raws[i])) {
				t.Errorf("%s #%d: %+v, %v; want %q as %s", rel, i, it.msg, it.err, raws[i], format)
			}
		}
		delete(got, j(rel))
	}
	fails := func(rel string, want error) *item {
		t.Helper()
		items := got[j(rel)]
		delete(got, j(rel))
		var fe *mailfile.Error
		if len(items) != 1 || !errors.Is(items[0].err, want) || !errors.As(items[0].err, &fe) || fe.Path != j(rel) {
			t.Errorf("%s: %v, want one %v", rel, items, want)
			return nil
		}
		return &items[0]
	}
	ok("a.eml", mailfile.FormatEML, "Subject: a\r\n\r\na\r\n")
	ok("sub/b.EML", mailfile.FormatEML, "\x00 binary junk named .eml")
	ok("sub/link.eml", mailfile.FormatEML, "Subject: a\r\n\r\na\r\n")
	ok("sub/deeper/17", mailfile.FormatEML, "Return-Path: <x@example.it>\nSubject: c\n\nc\n")
	ok("box", mailfile.FormatMbox, "Subject: 4\n\nFrom four\n", "Subject: 5\r\n")
	ok("Maildir/cur/1:2,S", mailfile.FormatMaildir, "Subject: 6\n\n")
	ok("Maildir/new/2", mailfile.FormatMaildir, "not even a header, but in new/\n")
	ok("Maildir/.Sent/cur/8:2,", mailfile.FormatMaildir, "Subject: 8\n\n")
	fails("notes.txt", mailfile.ErrNotMail)
	fails("empty.eml", mailfile.ErrEmpty)
	fails("sub/loop", mailfile.ErrLoop)
	fails("self", mailfile.ErrLoop)
	fails("fifo.eml", mailfile.ErrSpecial)
	fails("Maildir/cur/a-folder", mailfile.ErrSpecial)
	if it := fails("big.eml", mailfile.ErrTooLarge); it != nil {
		if it.msg.Raw != nil || it.msg.Size != int64(len(big)) || it.msg.Sum != sha256.Sum256([]byte(big)) {
			t.Errorf("big.eml: %d bytes kept, size %d, sum %x", len(it.msg.Raw), it.msg.Size, it.msg.Sum)
		}
		if !strings.Contains(it.err.Error(), "3015 bytes, limit 2000") {
			t.Errorf("big.eml: %v", it.err)
		}
	}
	for p, items := range got {
		t.Errorf("unexpected %s: %v", p, items)
	}
	// Every regular file but the Maildir's own, its tmp/ and its dot files (not the FIFO).
	var want int64
	counted := []string{"a.eml", "sub/b.EML", "sub/deeper/17", "notes.txt", "box", "empty.mbox", "empty.eml", "big.eml",
		"Maildir/cur/1:2,S", "Maildir/new/2", "Maildir/.Sent/cur/8:2,", "sub/link.eml"}
	for _, p := range counted {
		fi, err := os.Stat(j(p))
		if err != nil {
			t.Fatal(err)
		}
		want += fi.Size()
	}
	if files, size := mailfile.Size(context.Background(), []string{root}, nil); files != len(counted) || size != want {
		t.Errorf("Size = %d files, %d bytes; want %d, %d", files, size, len(counted), want)
	}
}

// Named files are read whatever their name and content; folders named twice are read once.
func TestReadNamed(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	write(t, filepath.Join(other, "m.eml"), "A: 1\n")
	txt := filepath.Join(dir, "notes.txt")
	write(t, txt, "hello world\n")
	mbox := filepath.Join(dir, "x.eml")
	write(t, mbox, "From a\nA\n\nFrom b\nB\n")
	got := readAll(t, []string{txt, mbox}, nil)
	if it := got[txt]; len(it) != 1 || it[0].err != nil || string(it[0].msg.Raw) != "hello world\n" {
		t.Errorf("named text file: %v", it)
	}
	if it := got[mbox]; len(it) != 2 || string(it[1].msg.Raw) != "B\n" || it[1].msg.Index != 1 {
		t.Errorf("named mbox: %v", it)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing exists")
	}
	got = readAll(t, []string{filepath.Join(dir, "missing"), other, other}, nil)
	if it := got[filepath.Join(dir, "missing")]; len(it) != 1 || !errors.Is(it[0].err, fs.ErrNotExist) || mailfile.Refused(it[0].err) {
		t.Errorf("missing path: %v", it)
	}
	if it := got[filepath.Join(other, "m.eml")]; len(it) != 1 || it[0].err != nil {
		t.Errorf("the folder's message: %v", it)
	}
	if it := got[other]; len(it) != 1 || !errors.Is(it[0].err, mailfile.ErrLoop) {
		t.Errorf("a folder named twice: %v", it)
	}
}

func TestReadDepth(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "1", "2", "3", "4")
	write(t, filepath.Join(deep, "m.eml"), "A: 1\n")
	write(t, filepath.Join(root, "1", "m.eml"), "A: 2\n")
	got := readAll(t, []string{root}, &mailfile.Options{MaxDepth: 3})
	if it := got[filepath.Join(root, "1", "m.eml")]; len(it) != 1 || it[0].err != nil {
		t.Errorf("shallow message: %v", it)
	}
	if it := got[deep]; len(it) != 1 || !errors.Is(it[0].err, mailfile.ErrTooDeep) {
		t.Errorf("deep folder: %v", it)
	}
}

func TestReadUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files whatever their mode")
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "m.eml")
	write(t, f, "A: 1\n")
	os.Chmod(f, 0)
	got := readAll(t, []string{dir}, nil)
	if it := got[f]; len(it) != 1 || !errors.Is(it[0].err, fs.ErrPermission) || mailfile.Refused(it[0].err) {
		t.Errorf("unreadable file: %v", it)
	}
}

func TestReadStops(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.eml", "b.eml", "c.eml"} {
		write(t, filepath.Join(dir, n), "A: 1\n")
	}
	n := 0
	for range mailfile.Read(context.Background(), []string{dir}, nil) {
		if n++; n == 2 {
			break
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var errs []error
	for _, err := range mailfile.Read(ctx, []string{dir}, nil) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
		t.Errorf("cancelled: %v", errs)
	}
}

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "m"), "From x\nA\n")
	write(t, filepath.Join(dir, "e"), "A: 1\n")
	write(t, filepath.Join(dir, "md", "cur", "x"), "A: 1\n")
	os.MkdirAll(filepath.Join(dir, "md", "new"), 0o755)
	for p, want := range map[string]mailfile.Kind{"m": mailfile.KindMbox, "e": mailfile.KindEML, "md": mailfile.KindMaildir, ".": mailfile.KindFolder} {
		if k, err := mailfile.Detect(filepath.Join(dir, p)); k != want || err != nil {
			t.Errorf("%s: %s, %v; want %s", p, k, err, want)
		}
	}
	if _, err := mailfile.Detect(os.DevNull); !errors.Is(err, mailfile.ErrSpecial) {
		t.Errorf("%s: %v", os.DevNull, err)
	}
}
