package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Path references inside raw JSON values (Job.ParamDict values,
// LinkTransform.Args, OptionPath.ParentPath) keep soma-workflow's tuple
// form ["<tuple>", "<id>", N], where N is the model's path ID: special
// paths numbered across the four tables in order — Transfers first, then
// SharedPaths, TempPaths and OptionPaths (see PathID and PathRefByID).
// EncodeSoma rewrites them to the file's ids, DecodeSoma back.

// PathID returns the model's path ID of a reference.
func (w *Workflow) PathID(r PathRef) int {
	base := 0
	switch r.Kind {
	case SharedPath:
		base = len(w.Transfers)
	case TempPath:
		base = len(w.Transfers) + len(w.SharedPaths)
	case OptionPathKind:
		base = len(w.Transfers) + len(w.SharedPaths) + len(w.TempPaths)
	}
	return base + r.Index
}

// PathRefByID resolves a model path ID (see PathID); the Pattern of the
// result is the table entry's.
func (w *Workflow) PathRefByID(id int) (PathRef, bool) {
	if id < 0 {
		return PathRef{}, false
	}
	if id < len(w.Transfers) {
		return PathRef{Kind: TransferPath, Index: id, Pattern: w.Transfers[id].Pattern}, true
	}
	id -= len(w.Transfers)
	if id < len(w.SharedPaths) {
		return PathRef{Kind: SharedPath, Index: id, Pattern: w.SharedPaths[id].Pattern}, true
	}
	id -= len(w.SharedPaths)
	if id < len(w.TempPaths) {
		return PathRef{Kind: TempPath, Index: id, Pattern: w.TempPaths[id].Pattern}, true
	}
	id -= len(w.TempPaths)
	if id < len(w.OptionPaths) {
		return PathRef{Kind: OptionPathKind, Index: id, Pattern: w.OptionPaths[id].Pattern}, true
	}
	return PathRef{}, false
}

// pathCount is the number of special paths of all kinds.
func (w *Workflow) pathCount() int {
	return len(w.Transfers) + len(w.SharedPaths) + len(w.TempPaths) + len(w.OptionPaths)
}

// pathPattern returns the table entry's pattern of a reference.
func (w *Workflow) pathPattern(r PathRef) string {
	if r2, ok := w.PathRefByID(w.PathID(r)); ok && r2.Kind == r.Kind {
		return r2.Pattern
	}
	return ""
}

// pathRefID recognises ["<tuple>", "<id>", N] and returns N.
func pathRefID(d []byte) (int, bool) {
	if jsonKind(d) != 'a' {
		return 0, false
	}
	items, isTuple, err := tupleItems(d, false)
	if err != nil || !isTuple || len(items) != 2 || jsonKind(items[0]) != 's' {
		return 0, false
	}
	if s, err := parseString(items[0]); err != nil || s != "<id>" {
		return 0, false
	}
	n, err := parseInt(items[1])
	if err != nil {
		return 0, false
	}
	return n, true
}

// mapPathIDs rewrites every ["<tuple>", "<id>", N] in a raw JSON value with
// f(N). A nil f only checks. It returns the value unchanged (same slice)
// when it holds no reference.
func mapPathIDs(d []byte, f func(int) (int, error)) (json.RawMessage, error) {
	if bytes.IndexByte(d, '[') < 0 || !bytes.Contains(d, []byte(`"<id>"`)) {
		return d, nil
	}
	var out []byte
	var err error
	var walk func(v []byte) []byte
	walk = func(v []byte) []byte {
		if err != nil {
			return nil
		}
		switch jsonKind(v) {
		case 'a':
			if n, ok := pathRefID(v); ok {
				m, e := f(n)
				if e != nil {
					err = e
					return nil
				}
				return []byte(`["<tuple>","<id>",` + strconv.Itoa(m) + `]`)
			}
			items, e := splitArray(v)
			if e != nil {
				err = e
				return nil
			}
			b := []byte{'['}
			for i, it := range items {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, walk(it)...)
			}
			return append(b, ']')
		case 'o':
			kvs, e := splitObject(v)
			if e != nil {
				err = e
				return nil
			}
			b := []byte{'{'}
			for i, p := range kvs {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendPyString(b, p.key)
				b = append(b, ':')
				b = append(b, walk(p.val)...)
			}
			return append(b, '}')
		default:
			return bytes.TrimSpace(v)
		}
	}
	out = walk(d)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// unknownPathErr is the error of a reference to an id that no table has.
func unknownPathErr(n int) error {
	return fmt.Errorf("reference to unknown special path id %d", n)
}

// PathIDsIn lists the model path IDs (see PathID) that a raw JSON value
// (a parameter value) references as ["<tuple>", "<id>", N].
func PathIDsIn(d json.RawMessage) []int {
	var ids []int
	_, _ = mapPathIDs(d, func(n int) (int, error) {
		ids = append(ids, n)
		return n, nil
	})
	return ids
}
