package tlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Leaf kinds defined by pecarchive. Other kinds that match the kind syntax parse too, so older
// verifiers accept logs written by newer archives.
const (
	KindMessage = "message" // an archived message: SHA256 is the SHA-256 of its exact raw bytes
	KindAccess  = "access"  // an audited read or export: SHA256 identifies what was accessed
	KindSource  = "source"  // a further place an archived message was found: SHA256 is the message's
)

// Limits of the leaf encoding.
const (
	// LeafVersion is the first line of every version-1 leaf.
	LeafVersion = "pecarchive-leaf/v1"
	// MaxKindLen is the maximum length of Leaf.Kind in bytes.
	MaxKindLen = 32
	// MaxExtraLen is the maximum length of Leaf.Extra in bytes.
	MaxExtraLen = 4096
	// MaxUnixTime is the largest Leaf.Time accepted (9999-12-31T23:59:59Z).
	MaxUnixTime = 253402300799
	// MaxLeafSize is the largest possible encoded leaf.
	MaxLeafSize = len(LeafVersion) + 1 + MaxKindLen + 1 + 64 + 1 + 12 + 1 + MaxExtraLen
)

// Leaf is the content of one log leaf.
//
// Encoding, version 1: a leaf is encoded as the concatenation of five fields, the first four each
// terminated by a single line feed (LF, 0x0A), with no other separators, padding or trailing
// newline:
//
//	"pecarchive-leaf/v1" LF <kind> LF <sha256> LF <seconds> LF <extra>
//
// where:
//   - kind is 1 to 32 bytes; the first is a lower-case ASCII letter a-z, the rest are a-z, 0-9
//     or '-'. "message" for an archived message, "access" for an audited read or export,
//     "source" for a place a message already archived was found again.
//   - sha256 is the 32-byte SHA-256 digest as 64 lower-case hexadecimal digits.
//   - seconds is the time as Unix seconds (UTC, fractions dropped), in decimal ASCII with no sign
//     and no leading zeros ("0" itself is allowed), between 0 and 253402300799 inclusive.
//   - extra is 0 to 4096 bytes of valid UTF-8 running to the end of the data (it may contain
//     line feeds). When it is empty the data ends with the line feed after seconds.
//
// For example, a message archived at 2024-05-06T07:08:09Z with no extra data is the 103 bytes
//
//	"pecarchive-leaf/v1\nmessage\n" + 64 hex digits + "\n1714979289\n"
//
// The encoding is canonical: every valid leaf has exactly one encoding, and [ParseLeaf] rejects
// anything else, so ParseLeaf(b).Marshal() == b for every accepted b. The leaf hash that goes
// into the tree is [LeafHash] of the encoding.
type Leaf struct {
	Kind   string
	SHA256 [32]byte
	Time   time.Time // stored as Unix seconds, UTC
	Extra  string
}

// Validate reports whether l can be encoded, with an error wrapping [ErrInvalidLeaf] if not.
func (l Leaf) Validate() error {
	if err := checkKind(l.Kind); err != nil {
		return err
	}
	if s := l.Time.Unix(); s < 0 || s > MaxUnixTime {
		return fmt.Errorf("%w: time %d out of range", ErrInvalidLeaf, s)
	}
	return checkExtra(l.Extra)
}

// Marshal returns the version-1 encoding of l (see [Leaf]). Sub-second precision of l.Time is
// dropped. Marshal returns nil when l is not valid; [Leaf.Validate] says why.
func (l Leaf) Marshal() []byte {
	if l.Validate() != nil {
		return nil
	}
	b := make([]byte, 0, len(LeafVersion)+len(l.Kind)+len(l.Extra)+80)
	b = append(b, LeafVersion...)
	b = append(b, '\n')
	b = append(b, l.Kind...)
	b = append(b, '\n')
	b = hex.AppendEncode(b, l.SHA256[:])
	b = append(b, '\n')
	b = strconv.AppendInt(b, l.Time.Unix(), 10)
	b = append(b, '\n')
	b = append(b, l.Extra...)
	return b
}

// ParseLeaf decodes a version-1 leaf encoding. It rejects every non-canonical input with an
// error wrapping [ErrInvalidLeaf]. The returned Time is in UTC.
func ParseLeaf(data []byte) (Leaf, error) {
	if len(data) > MaxLeafSize {
		return Leaf{}, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidLeaf, len(data), MaxLeafSize)
	}
	var f [4][]byte
	rest := data
	for i := range f {
		j := bytes.IndexByte(rest, '\n')
		if j < 0 {
			return Leaf{}, fmt.Errorf("%w: truncated (missing line %d)", ErrInvalidLeaf, i+1)
		}
		f[i], rest = rest[:j], rest[j+1:]
	}
	if string(f[0]) != LeafVersion {
		return Leaf{}, fmt.Errorf("%w: unknown version line %.40q", ErrInvalidLeaf, f[0])
	}
	var l Leaf
	l.Kind = string(f[1])
	if err := checkKind(l.Kind); err != nil {
		return Leaf{}, err
	}
	if len(f[2]) != 64 {
		return Leaf{}, fmt.Errorf("%w: sha256 must be 64 hex digits", ErrInvalidLeaf)
	}
	for _, c := range f[2] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return Leaf{}, fmt.Errorf("%w: sha256 must be lower-case hex", ErrInvalidLeaf)
		}
	}
	if _, err := hex.Decode(l.SHA256[:], f[2]); err != nil {
		return Leaf{}, fmt.Errorf("%w: sha256: %v", ErrInvalidLeaf, err)
	}
	s := f[3]
	if len(s) == 0 || len(s) > 12 || (s[0] == '0' && len(s) > 1) {
		return Leaf{}, fmt.Errorf("%w: seconds not canonical", ErrInvalidLeaf)
	}
	var secs int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return Leaf{}, fmt.Errorf("%w: seconds not decimal", ErrInvalidLeaf)
		}
		secs = secs*10 + int64(c-'0')
	}
	if secs > MaxUnixTime {
		return Leaf{}, fmt.Errorf("%w: time %d out of range", ErrInvalidLeaf, secs)
	}
	l.Time = time.Unix(secs, 0).UTC()
	l.Extra = string(rest)
	if err := checkExtra(l.Extra); err != nil {
		return Leaf{}, err
	}
	return l, nil
}

func checkKind(k string) error {
	if k == "" || len(k) > MaxKindLen {
		return fmt.Errorf("%w: kind must be 1 to %d bytes", ErrInvalidLeaf, MaxKindLen)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || i > 0 && ('0' <= c && c <= '9' || c == '-')) {
			return fmt.Errorf("%w: kind %.40q: bad character at %d", ErrInvalidLeaf, k, i)
		}
	}
	return nil
}

func checkExtra(e string) error {
	if len(e) > MaxExtraLen {
		return fmt.Errorf("%w: extra is %d bytes, limit %d", ErrInvalidLeaf, len(e), MaxExtraLen)
	}
	if !utf8.ValidString(e) {
		return fmt.Errorf("%w: extra is not valid UTF-8", ErrInvalidLeaf)
	}
	return nil
}

// LeafHash returns the RFC 6962 hash of leaf data: SHA-256(0x00 || data).
func LeafHash(data []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// NodeHash returns the RFC 6962 hash of an interior node: SHA-256(0x01 || left || right).
func NodeHash(left, right []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(left)
	h.Write(right)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// EmptyRoot returns the root hash of the empty tree: SHA-256 of the empty string.
func EmptyRoot() [32]byte { return sha256.Sum256(nil) }
