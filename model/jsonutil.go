package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// This file holds small, allocation-light JSON helpers: splitting objects
// and arrays while keeping key order and seeing duplicated keys (which
// encoding/json hides), scalar parsers, and a writer that formats like
// Python's json.dump(indent=4, ensure_ascii=True).

// kv is one member of a JSON object, in file order.
type kv struct {
	key string
	val []byte
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(d []byte, i int) int {
	for i < len(d) && isWS(d[i]) {
		i++
	}
	return i
}

// maxNesting bounds how deep values nest in a workflow file (soma-workflow's
// own reader, Python's json, gives up at about 1000; formatting deep values
// with indentation is quadratic).
const maxNesting = 200

var errEnd = errors.New("unexpected end of JSON input")

// skipString returns the index just past the string starting at d[i] == '"'.
func skipString(d []byte, i int) (int, error) {
	i++
	for i < len(d) {
		switch d[i] {
		case '"':
			return i + 1, nil
		case '\\':
			i += 2
		default:
			i++
		}
	}
	return 0, errEnd
}

// skipValue returns the index just past the JSON value that starts at or
// after d[i]. It checks bracket structure; leaves are checked by whoever
// parses them.
func skipValue(d []byte, i int) (int, error) {
	i = skipWS(d, i)
	if i >= len(d) {
		return 0, errEnd
	}
	switch c := d[i]; c {
	case '"':
		return skipString(d, i)
	case '{', '[':
		stack := []byte{c}
		i++
		for i < len(d) {
			switch d[i] {
			case '"':
				e, err := skipString(d, i)
				if err != nil {
					return 0, err
				}
				i = e
				continue
			case '{', '[':
				if len(stack) >= maxNesting {
					return 0, fmt.Errorf("nested more than %d levels deep", maxNesting)
				}
				stack = append(stack, d[i])
			case '}', ']':
				open := byte('{')
				if d[i] == ']' {
					open = '['
				}
				if stack[len(stack)-1] != open {
					return 0, fmt.Errorf("mismatched %q at offset %d", d[i], i)
				}
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return 0, errEnd
	case '}', ']', ',', ':':
		return 0, fmt.Errorf("unexpected %q at offset %d", c, i)
	default:
		s := i
		for i < len(d) {
			c := d[i]
			if isWS(c) || c == ',' || c == '}' || c == ']' || c == ':' {
				break
			}
			i++
		}
		if !validLiteral(d[s:i]) {
			return 0, fmt.Errorf("invalid JSON value %q", truncate(string(d[s:i]), 40))
		}
		return i, nil
	}
}

// validLiteral checks true, false, null or a JSON number.
func validLiteral(v []byte) bool {
	switch string(v) {
	case "true", "false", "null":
		return true
	}
	i := 0
	if i < len(v) && v[i] == '-' {
		i++
	}
	if i >= len(v) {
		return false
	}
	if v[i] == '0' {
		i++
	} else if v[i] >= '1' && v[i] <= '9' {
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i < len(v) && v[i] == '.' {
		i++
		s := i
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		if i == s {
			return false
		}
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		s := i
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		if i == s {
			return false
		}
	}
	return i == len(v)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// splitObject splits a JSON object into its members, in order.
func splitObject(d []byte) ([]kv, error) {
	i := skipWS(d, 0)
	if i >= len(d) || d[i] != '{' {
		return nil, fmt.Errorf("expected a JSON object, got %s", describe(d))
	}
	i = skipWS(d, i+1)
	out := make([]kv, 0, 16)
	if i < len(d) && d[i] == '}' {
		if j := skipWS(d, i+1); j != len(d) {
			return nil, fmt.Errorf("unexpected data after the object at offset %d", j)
		}
		return out, nil
	}
	for {
		if i >= len(d) {
			return nil, errEnd
		}
		if d[i] != '"' {
			return nil, fmt.Errorf("expected a key at offset %d", i)
		}
		e, err := skipString(d, i)
		if err != nil {
			return nil, err
		}
		key, err := parseString(d[i:e])
		if err != nil {
			return nil, err
		}
		i = skipWS(d, e)
		if i >= len(d) || d[i] != ':' {
			return nil, fmt.Errorf("expected ':' after key %q", key)
		}
		vs := skipWS(d, i+1)
		ve, err := skipValue(d, vs)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		out = append(out, kv{key, d[vs:ve]})
		i = skipWS(d, ve)
		if i >= len(d) {
			return nil, errEnd
		}
		if d[i] == '}' {
			if j := skipWS(d, i+1); j != len(d) {
				return nil, fmt.Errorf("unexpected data after the object at offset %d", j)
			}
			return out, nil
		}
		if d[i] != ',' {
			return nil, fmt.Errorf("expected ',' or '}' at offset %d", i)
		}
		i = skipWS(d, i+1)
	}
}

// splitArray splits a JSON array into its elements.
func splitArray(d []byte) ([][]byte, error) {
	i := skipWS(d, 0)
	if i >= len(d) || d[i] != '[' {
		return nil, fmt.Errorf("expected a JSON array, got %s", describe(d))
	}
	i = skipWS(d, i+1)
	out := [][]byte{}
	if i < len(d) && d[i] == ']' {
		if j := skipWS(d, i+1); j != len(d) {
			return nil, fmt.Errorf("unexpected data after the array at offset %d", j)
		}
		return out, nil
	}
	for {
		vs := skipWS(d, i)
		ve, err := skipValue(d, vs)
		if err != nil {
			return nil, err
		}
		out = append(out, d[vs:ve])
		i = skipWS(d, ve)
		if i >= len(d) {
			return nil, errEnd
		}
		if d[i] == ']' {
			if j := skipWS(d, i+1); j != len(d) {
				return nil, fmt.Errorf("unexpected data after the array at offset %d", j)
			}
			return out, nil
		}
		if d[i] != ',' {
			return nil, fmt.Errorf("expected ',' or ']' at offset %d", i)
		}
		i++
	}
}

// jsonKind returns the kind of a raw JSON value: 'o' object, 'a' array,
// 's' string, 'n' number, 'b' boolean, 'z' null, 0 for nothing.
func jsonKind(d []byte) byte {
	i := skipWS(d, 0)
	if i >= len(d) {
		return 0
	}
	switch d[i] {
	case '{':
		return 'o'
	case '[':
		return 'a'
	case '"':
		return 's'
	case 't', 'f':
		return 'b'
	case 'n':
		return 'z'
	default:
		return 'n'
	}
}

// describe names the JSON type of a raw value for error messages.
func describe(d []byte) string {
	switch jsonKind(d) {
	case 'o':
		return "an object"
	case 'a':
		return "an array"
	case 's':
		return "a string"
	case 'n':
		return "a number"
	case 'b':
		return "a boolean"
	case 'z':
		return "null"
	}
	return "nothing"
}

func isNull(d []byte) bool { return string(bytes.TrimSpace(d)) == "null" }

// parseString decodes a JSON string.
func parseString(d []byte) (string, error) {
	d = bytes.TrimSpace(d)
	if len(d) < 2 || d[0] != '"' || d[len(d)-1] != '"' {
		return "", fmt.Errorf("expected a string, got %s", describe(d))
	}
	in := d[1 : len(d)-1]
	simple := true
	for _, c := range in {
		if c == '\\' || c == '"' || c < 0x20 || c >= 0x80 {
			simple = false
			break
		}
	}
	if simple {
		return string(in), nil
	}
	if bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
		ok := true
		for _, c := range in {
			if c < 0x20 || c == '"' {
				ok = false
				break
			}
		}
		if ok {
			return string(in), nil
		}
	}
	var s string
	if err := json.Unmarshal(d, &s); err != nil {
		return "", fmt.Errorf("bad string: %w", err)
	}
	return s, nil
}

// parseInt decodes a JSON integer (no fraction, no exponent).
func parseInt(d []byte) (int, error) {
	d = bytes.TrimSpace(d)
	if jsonKind(d) != 'n' {
		return 0, fmt.Errorf("expected an integer, got %s", describe(d))
	}
	n, err := strconv.Atoi(string(d))
	if err != nil || !json.Valid(d) {
		return 0, fmt.Errorf("expected an integer, got %s", truncate(string(d), 40))
	}
	return n, nil
}

func parseBool(d []byte) (bool, error) {
	switch string(bytes.TrimSpace(d)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("expected a boolean, got %s", describe(d))
}

// parseStringMap decodes an object of strings, keeping nothing else.
func parseStringMap(d []byte) (map[string]string, error) {
	kvs, err := splitObject(d)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(kvs))
	for _, p := range kvs {
		s, err := parseString(p.val)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", p.key, err)
		}
		if _, dup := m[p.key]; dup {
			return nil, fmt.Errorf("key %q appears twice", p.key)
		}
		m[p.key] = s
	}
	return m, nil
}

// validRaw checks a raw JSON value and returns a private copy.
func validRaw(d []byte) (json.RawMessage, error) {
	d = bytes.TrimSpace(d)
	if !json.Valid(d) {
		var v any
		err := json.Unmarshal(d, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return nil, err
	}
	if bytes.IndexByte(d, '{') >= 0 {
		if err := checkDupKeys(d); err != nil {
			return nil, err
		}
	}
	return append(json.RawMessage(nil), d...), nil
}

// checkDupKeys reports an object key that appears twice in a valid value.
func checkDupKeys(d []byte) error {
	switch jsonKind(d) {
	case 'o':
		kvs, err := splitObject(d)
		if err != nil {
			return err
		}
		seen := make(map[string]bool, len(kvs))
		for _, p := range kvs {
			if seen[p.key] {
				return fmt.Errorf("key %q appears twice", p.key)
			}
			seen[p.key] = true
			if err := checkDupKeys(p.val); err != nil {
				return err
			}
		}
	case 'a':
		items, err := splitArray(d)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := checkDupKeys(it); err != nil {
				return err
			}
		}
	}
	return nil
}

// tupleItems returns the items after the "<tuple>" marker when d is a
// soma-workflow tuple, or the items of a plain array when plainOK.
func tupleItems(d []byte, plainOK bool) (items [][]byte, isTuple bool, err error) {
	items, err = splitArray(d)
	if err != nil {
		return nil, false, err
	}
	if len(items) > 0 && jsonKind(items[0]) == 's' {
		if s, e := parseString(items[0]); e == nil && s == "<tuple>" {
			return items[1:], true, nil
		}
	}
	if !plainOK {
		return nil, false, errors.New("expected a [\"<tuple>\", ...] array")
	}
	return items, false, nil
}

// ---------------------------------------------------------------- writer

// pyWriter writes JSON as Python's json.dump(obj, indent=4) does, with
// ensure_ascii: one item per line, ", " never used, ": " after keys,
// empty containers as [] and {}, every non-ASCII or non-printable
// character escaped as \uXXXX (lowercase hex).
type pyWriter struct {
	b     []byte
	stack []bool // per open container: has it items yet?
}

func (w *pyWriter) indent() {
	w.b = append(w.b, '\n')
	for range len(w.stack) {
		w.b = append(w.b, "    "...)
	}
}

// item starts a new item in the current container (if any).
func (w *pyWriter) item() {
	if n := len(w.stack); n > 0 {
		if w.stack[n-1] {
			w.b = append(w.b, ',')
		}
		w.stack[n-1] = true
		w.indent()
	}
}

func (w *pyWriter) open(c byte) {
	w.item()
	w.b = append(w.b, c)
	w.stack = append(w.stack, false)
}

// openV opens a container as the value of a key just written.
func (w *pyWriter) openV(c byte) {
	w.b = append(w.b, c)
	w.stack = append(w.stack, false)
}

func (w *pyWriter) close(c byte) {
	had := w.stack[len(w.stack)-1]
	w.stack = w.stack[:len(w.stack)-1]
	if had {
		w.indent()
	}
	w.b = append(w.b, c)
}

func (w *pyWriter) key(k string) {
	w.item()
	w.b = appendPyString(w.b, k)
	w.b = append(w.b, ": "...)
}

// Values: v* write a value after key(); a* write an array item.
func (w *pyWriter) vStr(s string)    { w.b = appendPyString(w.b, s) }
func (w *pyWriter) vLit(s string)    { w.b = append(w.b, s...) }
func (w *pyWriter) vInt(n int)       { w.b = strconv.AppendInt(w.b, int64(n), 10) }
func (w *pyWriter) vBool(v bool)     { w.b = strconv.AppendBool(w.b, v) }
func (w *pyWriter) aStr(s string)    { w.item(); w.vStr(s) }
func (w *pyWriter) aLit(s string)    { w.item(); w.vLit(s) }
func (w *pyWriter) aInt(n int)       { w.item(); w.vInt(n) }
func (w *pyWriter) kStr(k, s string) { w.key(k); w.vStr(s) }
func (w *pyWriter) kInt(k string, n int) {
	w.key(k)
	w.vInt(n)
}
func (w *pyWriter) kBool(k string, v bool) { w.key(k); w.vBool(v) }

// vRaw writes a raw JSON value (already valid) re-formatted.
func (w *pyWriter) vRaw(d []byte) {
	d = bytes.TrimSpace(d)
	switch jsonKind(d) {
	case 'o':
		kvs, err := splitObject(d)
		if err != nil {
			w.vLit("null")
			return
		}
		w.openV('{')
		for _, p := range kvs {
			w.key(p.key)
			w.vRaw(p.val)
		}
		w.close('}')
	case 'a':
		items, err := splitArray(d)
		if err != nil {
			w.vLit("null")
			return
		}
		w.openV('[')
		for _, it := range items {
			w.item()
			w.vRaw(it)
		}
		w.close(']')
	case 's':
		s, err := parseString(d)
		if err != nil {
			w.vLit("null")
			return
		}
		w.vStr(s)
	case 0:
		w.vLit("null")
	default:
		w.b = append(w.b, d...)
	}
}

func (w *pyWriter) aRaw(d []byte) { w.item(); w.vRaw(d) }

const hexDigits = "0123456789abcdef"

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&15], hexDigits[r>>8&15], hexDigits[r>>4&15], hexDigits[r&15])
}

// PyJSONString is s as Python's json.dumps(s) writes it (ensure_ascii:
// what is not printable ASCII as \uXXXX, \b \f \n \r \t by name).
func PyJSONString(s string) string { return string(appendPyString(nil, s)) }

// appendPyString appends s as Python's json.dumps(s, ensure_ascii=True).
func appendPyString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			j := i + 1
			for j < len(s) && s[j] >= 0x20 && s[j] < 0x7f && s[j] != '"' && s[j] != '\\' {
				j++
			}
			b = append(b, s[i:j]...)
			i = j
			continue
		}
		if c < 0x80 {
			switch c {
			case '"':
				b = append(b, '\\', '"')
			case '\\':
				b = append(b, '\\', '\\')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = appendU(b, rune(c))
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r >= 0x10000 {
			r -= 0x10000
			b = appendU(b, 0xd800+(r>>10))
			b = appendU(b, 0xdc00+(r&0x3ff))
		} else {
			b = appendU(b, r)
		}
	}
	return append(b, '"')
}
