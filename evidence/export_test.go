package evidence

import (
	"crypto/sha256"
	"io"
)

// ASiCRef and WriteASiCManifest expose the ASiC manifest writer to the external tests, which
// reseal tampered bundles with it.
type ASiCRef = asicRef

func WriteASiCManifest(w io.Writer, names, types []string, data [][]byte) error {
	refs := make([]asicRef, len(names))
	for i := range names {
		refs[i] = asicRef{URI: names[i], MimeType: types[i], SHA256: sha256.Sum256(data[i])}
	}
	return writeASiCManifest(w, refs)
}

// DecodeStrict exposes the strict JSON decoder.
var DecodeStrict = decodeStrict

// ParseASiCManifest exposes the ASiC manifest parser to the fuzz target.
func ParseASiCManifest(data []byte) (n int, err error) {
	refs, err := parseASiCManifest(data)
	return len(refs), err
}
