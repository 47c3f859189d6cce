package model

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
)

// equivalentFiles compares two soma-workflow JSON files as JSON values
// (key order ignored; param_dict order is not kept by the model).
func equivalentFiles(a, b []byte) error {
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		return err
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		return err
	}
	for _, v := range []any{va, vb} {
		if m, ok := v.(map[string]any); ok {
			if deps, ok := m["dependencies"].([]any); ok {
				sort.Slice(deps, func(i, j int) bool { return fmt.Sprint(deps[i]) < fmt.Sprint(deps[j]) })
			}
		}
	}
	return diffJSON("", va, vb)
}

func diffJSON(path string, a, b any) error {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: object vs %T", path, b)
		}
		for k := range x {
			if _, ok := y[k]; !ok {
				return fmt.Errorf("%s.%s: missing in the second", path, k)
			}
		}
		for k := range y {
			if _, ok := x[k]; !ok {
				return fmt.Errorf("%s.%s: missing in the first", path, k)
			}
			if err := diffJSON(path+"."+k, x[k], y[k]); err != nil {
				return err
			}
		}
		return nil
	case []any:
		y, ok := b.([]any)
		if !ok {
			return fmt.Errorf("%s: array vs %T", path, b)
		}
		if len(x) != len(y) {
			return fmt.Errorf("%s: %d items vs %d", path, len(x), len(y))
		}
		for i := range x {
			if err := diffJSON(fmt.Sprintf("%s[%d]", path, i), x[i], y[i]); err != nil {
				return err
			}
		}
		return nil
	}
	if !reflect.DeepEqual(a, b) {
		return fmt.Errorf("%s: %v vs %v", path, a, b)
	}
	return nil
}
