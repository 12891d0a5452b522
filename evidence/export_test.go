package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
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

// CheckTokens and CheckTokensRef are the fast key scanner and a reference built on
// encoding/json's tokenizer, which the fuzz target compares.
var CheckTokens = checkTokens

func CheckTokensRef(data []byte) error { return checkTokensRef(data) }

type jsonFrame struct {
	object  bool
	wantKey bool
	keys    map[string]struct{}
}

// checkTokensRef walks the token stream of data: one value, keys of the form [a-z0-9_]+ and unique
// within their object, no null, bounded depth.
func checkTokensRef(data []byte) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var stack []*jsonFrame
	values := 0
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
		if len(stack) == 0 {
			values++
		}
	}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if values > 0 {
			return errors.New("data after the top-level value")
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
			top := stack[n-1]
			if tok == json.Delim('}') {
				stack = stack[:n-1]
				valueDone()
				continue
			}
			key, ok := tok.(string)
			if !ok {
				return fmt.Errorf("object key expected, got %v", tok)
			}
			if !plainKey(key) {
				return fmt.Errorf("key %.60q is not of the schema's form [a-z0-9_]+", key)
			}
			if _, dup := top.keys[key]; dup {
				return fmt.Errorf("duplicate key %q", key)
			}
			top.keys[key] = struct{}{}
			top.wantKey = false
			continue
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) >= maxJSONDepth {
					return fmt.Errorf("nested deeper than %d", maxJSONDepth)
				}
				f := &jsonFrame{object: t == '{', wantKey: t == '{'}
				if f.object {
					f.keys = make(map[string]struct{})
				}
				stack = append(stack, f)
			default: // ']' ('}' is handled with the keys)
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case nil:
			return errors.New("null is not allowed")
		default:
			valueDone()
		}
	}
	if values != 1 || len(stack) != 0 {
		return errors.New("not one complete JSON value")
	}
	return nil
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
