// Package mailfile owns reading mail from files, byte-exact: `.eml` files, folders of them
// (recursive), mbox files (mboxrd and mboxo) and Maildir folders. [Read] walks paths and yields
// every message with the file it came from, its index within that file and its exact bytes;
// [MboxReader] splits one mbox stream. It does no I/O beyond reading the paths it is given, and
// never logs: each problem comes back as an [*Error] naming the path (and the message within an
// mbox) and wrapping one of this package's errors or the operating system's.
//
// # Formats
//
// A path names a file or a folder; [Detect] says how it is read:
//   - a file whose first line starts with "From " is an mbox: each "From " line starts a message
//     and is not part of it, the blank line before the next "From " line (or the end of the file)
//     is not part of the message either, and one '>' is removed from every line that starts with
//     one or more '>' followed by "From " (mboxrd; for mboxo files this restores the escaped
//     "From " lines, which is all mboxo can represent). Every other byte is kept as it is: CRLF,
//     LF and mixes of the two, trailing spaces, binary data. Content-Length headers (mboxcl) are
//     not used.
//   - any other file named in paths is one message (.eml), its bytes exactly.
//   - a folder with cur/ and new/ subfolders is a Maildir: every file of cur/ and new/ is one
//     message (names starting with '.' are ignored, as the Maildir convention says); tmp/ (mail
//     being delivered) and the files of the Maildir itself (indexes, uid lists) are skipped; its
//     other subfolders (Maildir++ folders such as .Sent) are read like any folder.
//   - any other folder is read recursively. Within it, a file is mail when its name ends in
//     .eml, or it is an mbox (by its first line, or an empty file named .mbox or .mbx), or its
//     first line is a header field ("Name: value"); other files are reported with [ErrNotMail]
//     and skipped.
//
// # Limits
//
// A message larger than Options.MaxSize is reported with [ErrTooLarge], its size and its SHA-256,
// and is never held in memory whole; the walk goes on with the next message. Folders nest at most
// Options.MaxDepth deep. Symbolic links are followed, but a folder is read once: reaching it again
// (a symbolic link loop, or two links to one folder) is reported with [ErrLoop]; a file reached
// twice is read twice (the archive stores its bytes once). Devices, pipes
// and sockets are reported with [ErrSpecial] and never opened for reading.
package mailfile

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of this package, wrapped in an [*Error]; use errors.Is. Operating-system errors (a file
// that cannot be opened or read) are wrapped as they are (for example fs.ErrPermission).
var (
	// ErrTooLarge: the message is over Options.MaxSize; it was not loaded (Message.Size and
	// Message.Sum describe it).
	ErrTooLarge = errors.New("mailfile: message over the size limit")
	// ErrEmpty: the message has no bytes (an empty .eml file, or two mbox "From " lines in a row).
	ErrEmpty = errors.New("mailfile: empty message")
	// ErrNotMail: a file found in a folder is neither .eml, nor mbox, nor starts with a header
	// field; it was skipped.
	ErrNotMail = errors.New("mailfile: not a mail file")
	// ErrSpecial: a device, pipe or socket, or a folder inside a Maildir's cur/ or new/.
	ErrSpecial = errors.New("mailfile: not a regular file or folder")
	// ErrLoop: a folder reached a second time through a symbolic link, or a symbolic link that
	// leads to itself.
	ErrLoop = errors.New("mailfile: symbolic link loop (folder already read)")
	// ErrTooDeep: folders nested deeper than Options.MaxDepth.
	ErrTooDeep = errors.New("mailfile: folders nested too deep")
)

// Defaults of Options.
const (
	// DefaultMaxSize is the archive's own default limit on one message.
	DefaultMaxSize  = 64 << 20
	DefaultMaxDepth = 64
)

// Options bound what is read. A nil *Options means the defaults.
type Options struct {
	// MaxSize bounds one message in bytes (default DefaultMaxSize).
	MaxSize int64
	// MaxDepth bounds the nesting of folders below a path given to Read (default
	// DefaultMaxDepth).
	MaxDepth int
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.MaxSize <= 0 {
		r.MaxSize = DefaultMaxSize
	}
	if r.MaxDepth <= 0 {
		r.MaxDepth = DefaultMaxDepth
	}
	return r
}

// Format is how a message was stored.
type Format string

const (
	FormatEML     Format = "eml"     // a file holding one message
	FormatMbox    Format = "mbox"    // one of the messages of an mbox file
	FormatMaildir Format = "maildir" // a file of a Maildir's cur/ or new/
)

// Message is one message read from a file.
type Message struct {
	// Path is the file holding the message, as reached from the path given to Read.
	Path   string
	Format Format
	// Index is the message's position within its file, from 0 (always 0 but for mbox files).
	Index int
	// Offset is where the message starts in its file (for an mbox, just after its "From " line).
	Offset int64
	// Raw is the message's exact bytes; nil when it comes with an error.
	Raw []byte
	// Size is the message's size in bytes: len(Raw), or the size of a message over the limit.
	Size int64
	// Sum is the SHA-256 of a message over the limit, computed while it was skipped; zero
	// otherwise (hash Raw).
	Sum [32]byte
}

// Error is a problem with one path, or with one message of a file.
type Error struct {
	Path string
	// Index and Offset locate the message within an mbox file (Mbox true); otherwise they are 0.
	Index  int
	Offset int64
	Mbox   bool
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("mailfile: ")
	b.WriteString(e.Path)
	if e.Mbox {
		fmt.Fprintf(&b, ": message %d at byte %d", e.Index, e.Offset)
	}
	b.WriteString(": ")
	b.WriteString(strings.TrimPrefix(e.Err.Error(), "mailfile: "))
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Refused reports whether err is a problem with the input itself (too large, empty, special
// file, loop, too deep) rather than a file that could not be read or one skipped as not mail.
func Refused(err error) bool {
	return errors.Is(err, ErrTooLarge) || errors.Is(err, ErrEmpty) || errors.Is(err, ErrSpecial) ||
		errors.Is(err, ErrLoop) || errors.Is(err, ErrTooDeep)
}
