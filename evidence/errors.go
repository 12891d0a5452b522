package evidence

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Errors of the reader. Every error [Open] and [Reader.ReadFile] return for a bundle they refuse
// is a *[FormatError] wrapping one of these, so callers use errors.Is.
var (
	// ErrNotZip: the input is not a readable ZIP archive.
	ErrNotZip = errors.New("evidence: not a ZIP archive")
	// ErrNotASiC: the mimetype entry is missing, not first, compressed, carries an extra field or
	// holds another media type.
	ErrNotASiC = errors.New("evidence: not an ASiC-E container")
	// ErrUnsafeName: an entry name that could escape a folder or is not a plain relative path
	// (absolute, "..", ".", empty segments, backslashes, drive letters, control characters).
	ErrUnsafeName = errors.New("evidence: unsafe entry name")
	// ErrBadName: an entry name that is not valid UTF-8.
	ErrBadName = errors.New("evidence: entry name is not valid UTF-8")
	// ErrDuplicateName: two entries with the same name, also after case folding and Unicode
	// normalisation.
	ErrDuplicateName = errors.New("evidence: duplicate entry name")
	// ErrNotRegular: a symlink, directory or other entry that is not a regular file.
	ErrNotRegular = errors.New("evidence: entry is not a regular file")
	// ErrUnsupported: an encrypted entry or a compression method other than store and deflate.
	ErrUnsupported = errors.New("evidence: unsupported entry")
	// ErrTooMany: more entries than [Limits].MaxEntries.
	ErrTooMany = errors.New("evidence: too many entries")
	// ErrTooLarge: an entry, or all entries together, larger than [Limits] allow (declared or
	// actually read).
	ErrTooLarge = errors.New("evidence: entry too large")
	// ErrRatio: declared sizes that deflate cannot produce (a zip bomb or a lie), or a stored
	// entry whose sizes differ.
	ErrRatio = errors.New("evidence: impossible compression ratio")
	// ErrOverlap: two entries share bytes of the archive (a known zip-bomb construction).
	ErrOverlap = errors.New("evidence: overlapping entries")
	// ErrLayout: bytes of the archive that no entry accounts for (before the first entry,
	// between entries, after the end record), a local header that names an entry otherwise or
	// disagrees with its central-directory record, a data descriptor that disagrees with it, or
	// end records that disagree with the central directory: what one ZIP reader would see and
	// another would not.
	ErrLayout = errors.New("evidence: ambiguous ZIP layout")
	// ErrComment: a comment on an entry, or on the archive other than the ASiC one.
	ErrComment = errors.New("evidence: unexpected ZIP comment")
	// ErrCorrupt: an entry whose bytes do not match its declared size or CRC-32.
	ErrCorrupt = errors.New("evidence: corrupt entry")
	// ErrMissing: a file the bundle must hold is absent.
	ErrMissing = errors.New("evidence: missing file")
	// ErrJSON: manifest.json is not valid, strict JSON of the schema (bad UTF-8, a duplicate or
	// unknown key, too deep, trailing data, a wrong type).
	ErrJSON = errors.New("evidence: malformed manifest.json")
	// ErrXML: META-INF/ASiCManifest.xml is not a well-formed ASiC manifest.
	ErrXML = errors.New("evidence: malformed ASiC manifest")
	// ErrVersion: a manifest format this package does not read.
	ErrVersion = errors.New("evidence: unknown bundle format")
)

// ErrInvalid reports bad input to the writer: a manifest that is not self-consistent or content
// that does not match it.
var ErrInvalid = errors.New("evidence: invalid bundle content")

// FormatError is a bundle refused by the reader: Err is one of the sentinel errors above, Name
// the entry concerned ("" for the archive as a whole).
type FormatError struct {
	Err    error
	Name   string
	Detail string
}

func (e *FormatError) Error() string {
	s := e.Err.Error()
	if e.Name != "" {
		s += fmt.Sprintf(" %q", e.Name)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(err error, name, format string, args ...any) *FormatError {
	d := format
	if len(args) > 0 {
		d = fmt.Sprintf(format, args...)
	}
	return &FormatError{Err: err, Name: name, Detail: d}
}

// Failure kinds: what failed.
const (
	// FailBundle: the bundle as a whole (refused by the reader, or a structural problem).
	FailBundle = "bundle"
	// FailFile: a file's bytes do not match what the manifests say, or a file is missing or
	// unexpected.
	FailFile = "file"
	// FailClaim: a claim of manifest.json differs from what the files show.
	FailClaim = "claim"
	// FailProof: an inclusion or consistency proof does not verify.
	FailProof = "proof"
	// FailSignature: a signature does not verify (a message's S/MIME signature, or the
	// checkpoint's).
	FailSignature = "signature"
)

// Failure is one thing that does not hold. Subject names it: a file name, a message
// ("message <sha256>"), a recipient ("delivery <msgid> recipient <address>"), a checkpoint.
type Failure struct {
	Kind    string `json:"kind"`
	Subject string `json:"subject"`
	Detail  string `json:"detail"`
}

func (f Failure) String() string { return f.Kind + " " + f.Subject + ": " + f.Detail }

// newFailure makes a Failure whose subject and detail are safe to print on a terminal: a hostile
// bundle's strings end up in them, so control characters and invalid UTF-8 are escaped and each
// is bounded.
func newFailure(kind, subject, detail string) Failure {
	return Failure{Kind: kind, Subject: printable(subject, 400), Detail: printable(detail, 2000)}
}

func printable(s string, max int) string {
	cut := len(s) > max
	if cut {
		s = s[:max]
	}
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		s = s[size:]
	}
	if cut {
		b.WriteString("…")
	}
	return b.String()
}
