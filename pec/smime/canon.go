package smime

import (
	"bytes"
	"io"
)

var crlf = []byte("\r\n")

// writeCanonical writes b to w with every bare LF (one not preceded by CR) replaced by CRLF, the
// canonical form S/MIME signs (RFC 5751 section 3.1.1). It never builds a converted copy: runs of
// bytes without a bare LF are written as they are. It reports whether b held a bare LF, i.e.
// whether the canonical form differs from b.
func writeCanonical(w io.Writer, b []byte) (changed bool) {
	pos, search := 0, 0 // pos: first byte not yet written; search: where to look for the next LF
	for {
		i := bytes.IndexByte(b[search:], '\n')
		if i < 0 {
			break
		}
		i += search
		if i == 0 || b[i-1] != '\r' {
			w.Write(b[pos:i])
			w.Write(crlf)
			pos = i + 1
			changed = true
		}
		search = i + 1
	}
	w.Write(b[pos:])
	return changed
}
