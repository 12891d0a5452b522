package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
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
	// The scanner passes separators over as it passes spaces; the decoder stops after one value.
	// Whatever follows the document, a stray comma or colon included, is refused here.
	if _, err := d.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the document", ErrJSON)
	}
	return nil
}

// checkTokens scans data as JSON for what encoding/json does not refuse: a key not of the form
// [a-z0-9_]+ as written (so an escaped key is refused), a key repeated in its object, null, nesting deeper than
// maxJSONDepth, or more than one top-level value. It relies on encoding/json for the rest of the
// syntax: on input that is not JSON it may return nil, and the decoder then refuses it.
func checkTokens(data []byte) error {
	type frame struct {
		object bool
		keys   []string
	}
	var stack []frame
	values := 0
	expectKey := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch c {
		case ' ', '\t', '\n', '\r', ',', ':':
			continue
		}
		if len(stack) == 0 && values > 0 {
			return errors.New("data after the top-level value")
		}
		if expectKey && c != '}' {
			if c != '"' {
				return nil // not JSON: the decoder says why
			}
			j := i + 1
			for j < len(data) && data[j] != '"' {
				if b := data[j]; !('a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '_') {
					return fmt.Errorf("key %.60q is not of the schema's form [a-z0-9_]+", keyAt(data, i))
				}
				j++
			}
			if j >= len(data) || j == i+1 {
				return fmt.Errorf("key %.60q is not of the schema's form [a-z0-9_]+", keyAt(data, i))
			}
			key := string(data[i+1 : j])
			top := &stack[len(stack)-1]
			for _, k := range top.keys {
				if k == key {
					return fmt.Errorf("duplicate key %q", key)
				}
			}
			top.keys = append(top.keys, key)
			expectKey = false
			i = j
			continue
		}
		switch c {
		case '{', '[':
			if len(stack) >= maxJSONDepth {
				return fmt.Errorf("nested deeper than %d", maxJSONDepth)
			}
			stack = append(stack, frame{object: c == '{'})
			expectKey = c == '{'
			continue
		case '}', ']':
			if len(stack) == 0 {
				return nil
			}
			stack = stack[:len(stack)-1]
			expectKey = false
		case '"':
			j := i + 1
			for j < len(data) && data[j] != '"' {
				if data[j] == '\\' {
					j++
				}
				j++
			}
			i = j
		case 'n':
			return errors.New("null is not allowed")
		default: // a number, true or false
			for i+1 < len(data) && !strings.ContainsRune(" \t\n\r,:]}", rune(data[i+1])) {
				i++
			}
		}
		// A value ended: in an object, a key comes next.
		if n := len(stack); n > 0 && stack[n-1].object {
			expectKey = true
		} else if n == 0 {
			values++
		}
	}
	return nil
}

// keyAt returns the start of the string at data[i:] for an error message.
func keyAt(data []byte, i int) string {
	s := string(data[i+1 : min(len(data), i+62)])
	if j := strings.IndexByte(s, '"'); j >= 0 {
		s = s[:j]
	}
	return s
}
