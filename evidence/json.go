package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of manifest.json (the schema needs 5).
const maxJSONDepth = 16

// decodeStrict decodes the JSON document data into v, refusing what encoding/json lets through:
// invalid UTF-8 (which it would replace silently), duplicate keys (it keeps the last), keys that
// match a field only case-insensitively (it accepts them), unknown keys, null, nesting deeper than
// maxJSONDepth and anything after the document. Errors wrap [ErrJSON].
func decodeStrict(data []byte, v any) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: not valid UTF-8", ErrJSON)
	}
	if err := checkTokens(data); err != nil {
		return fmt.Errorf("%w: %v", ErrJSON, err)
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrJSON, err)
	}
	return nil
}

type jsonFrame struct {
	object  bool
	wantKey bool
	keys    map[string]struct{}
}

// checkTokens walks the token stream of data: one value, keys of the form [a-z0-9_]+ and unique
// within their object, no null, bounded depth.
func checkTokens(data []byte) error {
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
