package mailfile

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Kind is what a path holds, as [Detect] sees it.
type Kind string

const (
	KindEML     Kind = "eml"     // a file of one message
	KindMbox    Kind = "mbox"    // an mbox file
	KindMaildir Kind = "maildir" // a Maildir folder
	KindFolder  Kind = "folder"  // another folder, read recursively
)

// headBytes is how much of a file is looked at to tell its format.
const headBytes = 1024

// readDirChunk is how many folder entries are held at once.
const readDirChunk = 256

// Detect tells how [Read] reads path when it is given: an mbox by its first line, a Maildir by
// its cur/ and new/ subfolders, any other folder recursively, any other file as one message.
func Detect(path string) (Kind, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", pathError(path, err)
	}
	switch {
	case fi.IsDir():
		if isMaildir(path) {
			return KindMaildir, nil
		}
		return KindFolder, nil
	case !fi.Mode().IsRegular():
		return "", &Error{Path: path, Err: ErrSpecial}
	}
	f, err := openRegular(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, len(fromLine))
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && err != io.EOF {
		return "", &Error{Path: path, Err: err}
	}
	if isFromLine(head[:n]) {
		return KindMbox, nil
	}
	return KindEML, nil
}

// Read walks paths (files and folders, see the package documentation) and yields every message
// found, in the order the walk reaches it. Problems come with the Message they concern (its
// Path, and its Index and Offset within an mbox) and an [*Error]; the walk then goes on with the
// next message or path. Read stops when ctx is done (yielding ctx's error once) or when the loop
// body breaks.
func Read(ctx context.Context, paths []string, opts *Options) iter.Seq2[Message, error] {
	return func(yield func(Message, error) bool) {
		w := &walker{ctx: ctx, opts: opts.withDefaults(), yield: yield, seen: map[fileID]bool{}}
		for _, p := range paths {
			if !w.path(p, 0, true) {
				return
			}
		}
	}
}

// Size returns how many files [Read] would open for paths and their total size in bytes, from
// a walk that reads folders but no file (files in folders that are not mail are counted too): a
// progress bar's total.
func Size(ctx context.Context, paths []string, opts *Options) (files int, bytes int64) {
	w := &walker{ctx: ctx, opts: opts.withDefaults(), seen: map[fileID]bool{},
		yield: func(Message, error) bool { return ctx.Err() == nil },
		stat: func(size int64) {
			files++
			bytes += size
		}}
	for _, p := range paths {
		if !w.path(p, 0, true) {
			break
		}
	}
	return files, bytes
}

type walker struct {
	ctx   context.Context
	opts  Options
	yield func(Message, error) bool
	seen  map[fileID]bool  // folders read
	stat  func(size int64) // set by Size: files are counted, not read
}

// fail yields a problem with path.
func (w *walker) fail(path string, err error) bool {
	return w.yield(Message{Path: path}, err)
}

// path reads a file or folder; named is true for the paths given to Read. It returns false when
// the walk must stop.
func (w *walker) path(path string, depth int, named bool) bool {
	if err := w.ctx.Err(); err != nil {
		w.yield(Message{Path: path}, err)
		return false
	}
	fi, err := os.Stat(path)
	if err != nil {
		return w.fail(path, pathError(path, err))
	}
	switch {
	case fi.IsDir():
		return w.folder(path, fi, depth)
	case fi.Mode().IsRegular():
		return w.file(path, FormatEML, named)
	}
	return w.fail(path, &Error{Path: path, Err: ErrSpecial})
}

// folder reads a Maildir or another folder.
func (w *walker) folder(path string, fi fs.FileInfo, depth int) bool {
	if depth > w.opts.MaxDepth {
		return w.fail(path, &Error{Path: path, Err: fmt.Errorf("%w (more than %d levels)", ErrTooDeep, w.opts.MaxDepth)})
	}
	id, err := idOf(path, fi)
	if err != nil {
		return w.fail(path, pathError(path, err))
	}
	if w.seen[id] {
		return w.fail(path, &Error{Path: path, Err: ErrLoop})
	}
	w.seen[id] = true
	if !isMaildir(path) {
		return w.entries(path, func(name string, _ fs.DirEntry) bool {
			return w.path(filepath.Join(path, name), depth+1, false)
		})
	}
	for _, sub := range []string{"cur", "new"} {
		dir := filepath.Join(path, sub)
		ok := w.entries(dir, func(name string, _ fs.DirEntry) bool {
			if strings.HasPrefix(name, ".") {
				return true // the Maildir convention: names starting with '.' are not messages
			}
			p := filepath.Join(dir, name)
			fi, err := os.Stat(p)
			switch {
			case err != nil:
				return w.fail(p, pathError(p, err))
			case !fi.Mode().IsRegular():
				return w.fail(p, &Error{Path: p, Err: ErrSpecial})
			}
			return w.file(p, FormatMaildir, true)
		})
		if !ok {
			return false
		}
	}
	// Maildir++ folders (.Sent, .Archive, ...) and any other subfolder; tmp/ holds mail being
	// delivered, and the Maildir's own files are its indexes and lists.
	return w.entries(path, func(name string, e fs.DirEntry) bool {
		switch name {
		case "cur", "new", "tmp":
			return true
		}
		p := filepath.Join(path, name)
		fi, err := os.Stat(p)
		if err != nil || !fi.IsDir() {
			return true
		}
		return w.folder(p, fi, depth+1)
	})
}

// entries calls fn for every entry of the folder path, a chunk of entries at a time.
func (w *walker) entries(path string, fn func(name string, e fs.DirEntry) bool) bool {
	d, err := os.Open(path)
	if err != nil {
		return w.fail(path, pathError(path, err))
	}
	defer d.Close()
	for {
		ents, err := d.ReadDir(readDirChunk)
		for _, e := range ents {
			if !fn(e.Name(), e) {
				return false
			}
		}
		switch {
		case err == io.EOF:
			return true
		case err != nil:
			return w.fail(path, pathError(path, err))
		}
	}
}

// file reads the regular file path: as an mbox when its first line says so (Maildir files are
// always one message), else as one message; a file found in a folder (named false) must look
// like mail.
func (w *walker) file(path string, format Format, named bool) bool {
	if w.stat != nil {
		if fi, err := os.Stat(path); err == nil {
			w.stat(fi.Size())
		}
		return w.ctx.Err() == nil
	}
	f, err := openRegular(path)
	if err != nil {
		return w.fail(path, err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, mboxBufSize)
	head, err := br.Peek(headBytes)
	if err != nil && err != io.EOF {
		return w.fail(path, &Error{Path: path, Err: err})
	}
	if format == FormatEML {
		ext := strings.ToLower(filepath.Ext(path))
		switch {
		case isFromLine(head), len(head) == 0 && (ext == ".mbox" || ext == ".mbx"):
			return w.mbox(path, br)
		case named, ext == ".eml", isHeaderLine(head):
		default:
			fi, _ := f.Stat()
			return w.yield(Message{Path: path, Size: fi.Size()}, &Error{Path: path, Err: ErrNotMail})
		}
	}
	msg := Message{Path: path, Format: format}
	fi, err := f.Stat()
	if err != nil {
		return w.fail(path, &Error{Path: path, Err: err})
	}
	if fi.Size() > w.opts.MaxSize {
		return w.yield(w.tooLarge(msg, br))
	}
	// The file may grow while it is read: never more than the limit, plus one byte to notice.
	raw := make([]byte, 0, fi.Size()+1)
	lr := &io.LimitedReader{R: br, N: w.opts.MaxSize + 1}
	for {
		if len(raw) == cap(raw) {
			raw = slices.Grow(raw, mboxBufSize)
		}
		n, err := lr.Read(raw[len(raw):cap(raw)])
		raw = raw[:len(raw)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return w.fail(path, &Error{Path: path, Err: err})
		}
	}
	if int64(len(raw)) > w.opts.MaxSize {
		return w.yield(w.tooLarge(msg, io.MultiReader(bytes.NewReader(raw), br)))
	}
	if len(raw) == 0 {
		return w.yield(msg, &Error{Path: path, Err: ErrEmpty})
	}
	msg.Raw, msg.Size = raw, int64(len(raw))
	return w.yield(msg, nil)
}

// tooLarge reads the rest of a message over the limit to hash it.
func (w *walker) tooLarge(msg Message, r io.Reader) (Message, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return msg, &Error{Path: msg.Path, Err: err}
	}
	msg.Size = n
	h.Sum(msg.Sum[:0])
	return msg, &Error{Path: msg.Path, Err: fmt.Errorf("%w (%d bytes, limit %d)", ErrTooLarge, n, w.opts.MaxSize)}
}

// mbox yields the messages of an mbox file.
func (w *walker) mbox(path string, r io.Reader) bool {
	mr := NewMboxReader(r, path, &w.opts)
	for {
		if err := w.ctx.Err(); err != nil {
			w.yield(Message{Path: path}, err)
			return false
		}
		msg, err := mr.Next()
		if err == io.EOF {
			return true
		}
		msg.Path, msg.Format = path, FormatMbox
		if !w.yield(msg, err) {
			return false
		}
		if err != nil && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrEmpty) {
			return true // a read error ends the file
		}
	}
}

// openRegular opens path for reading only if it is a regular file, without blocking on a pipe
// that took its place.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, pathError(path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, &Error{Path: path, Err: err}
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &Error{Path: path, Err: ErrSpecial}
	}
	return f, nil
}

// pathError wraps an error of the operating system about path, telling a symbolic link loop.
func pathError(path string, err error) error {
	if errors.Is(err, syscall.ELOOP) {
		return &Error{Path: path, Err: fmt.Errorf("%w: %w", ErrLoop, unwrapPath(err))}
	}
	return &Error{Path: path, Err: unwrapPath(err)}
}

// unwrapPath drops the *fs.PathError around err: the Error names the path already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func isMaildir(path string) bool {
	for _, sub := range []string{"cur", "new"} {
		fi, err := os.Stat(filepath.Join(path, sub))
		if err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

func isFromLine(head []byte) bool { return bytes.HasPrefix(head, fromLine) }

// isHeaderLine reports whether head starts with a header field name and a colon (RFC 5322
// section 2.2: printable ASCII but the colon).
func isHeaderLine(head []byte) bool {
	for i, c := range head {
		switch {
		case c == ':':
			return i > 0
		case c < 33 || c > 126:
			return false
		}
	}
	return false
}
