package engine

import (
	"encoding/json"
	"fmt"

	"github.com/somaflow/somaflow/model"
)

// applyTransform computes a destination parameter from a linked source
// value: the value itself, or one of soma-workflow's built-in link functions
// (param_link_functions.py), re-implemented.
func applyTransform(l model.ParamLink, value, dst any) (any, error) {
	if l.Transform == nil {
		return value, nil
	}
	args := make([]any, len(l.Transform.Args))
	for i, raw := range l.Transform.Args {
		if err := json.Unmarshal(raw, &args[i]); err != nil {
			return nil, fmt.Errorf("argument %d of %s: %v", i, l.Transform.Name, err)
		}
	}
	intArg := func(i int) (int, error) {
		if i >= len(args) {
			return 0, fmt.Errorf("%s needs %d argument(s)", l.Transform.Name, i+1)
		}
		f, ok := args[i].(float64)
		if !ok || f != float64(int(f)) {
			return 0, fmt.Errorf("%s: argument %d must be an integer", l.Transform.Name, i)
		}
		return int(f), nil
	}
	numArg := func(i int) (float64, error) {
		if i >= len(args) {
			return 0, fmt.Errorf("%s needs %d argument(s)", l.Transform.Name, i+1)
		}
		f, ok := args[i].(float64)
		if !ok {
			return 0, fmt.Errorf("%s: argument %d must be a number", l.Transform.Name, i)
		}
		return f, nil
	}
	list := func(v any, what string) ([]any, error) {
		if v == nil {
			return nil, nil
		}
		l, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%s is not a list", what)
		}
		return l, nil
	}
	num := func(v any) (float64, error) {
		f, ok := v.(float64)
		if !ok {
			return 0, fmt.Errorf("value %v is not a number", v)
		}
		return f, nil
	}
	switch l.Transform.Name {
	case "list_to_sequence":
		i, err := intArg(0)
		if err != nil {
			return nil, err
		}
		src, err := list(value, "source value")
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= len(src) {
			return nil, fmt.Errorf("list_to_sequence: index %d out of range (%d items)", i, len(src))
		}
		return src[i], nil
	case "sequence_to_list":
		i, err := intArg(0)
		if err != nil {
			return nil, err
		}
		d, err := list(dst, "destination value")
		if err != nil {
			return nil, err
		}
		for len(d) <= i {
			d = append(d, nil)
		}
		d[i] = value
		return d, nil
	case "append_to_list":
		d, err := list(dst, "destination value")
		if err != nil {
			return nil, err
		}
		return append(d, value), nil
	case "list_all_but_one":
		i, err := intArg(0)
		if err != nil {
			return nil, err
		}
		src, err := list(value, "source value")
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= len(src) {
			return append([]any(nil), src...), nil
		}
		return append(append([]any(nil), src[:i]...), src[i+1:]...), nil
	case "list_cv_train_fold", "list_cv_test_fold":
		fold, err := intArg(0)
		if err != nil {
			return nil, err
		}
		nfolds, err := intArg(1)
		if err != nil {
			return nil, err
		}
		if nfolds <= 0 {
			return nil, fmt.Errorf("%s: nfolds must be positive", l.Transform.Name)
		}
		src, err := list(value, "source value")
		if err != nil {
			return nil, err
		}
		n := len(src)
		size, supp := n/nfolds, n%nfolds
		begin := size * fold
		begin += min(begin, supp)
		end := size * (fold + 1)
		end += min(end, supp)
		begin, end = max(0, min(begin, n)), max(0, min(end, n))
		if l.Transform.Name == "list_cv_test_fold" {
			return append([]any(nil), src[begin:end]...), nil
		}
		return append(append([]any(nil), src[:begin]...), src[end:]...), nil
	case "list_cat":
		d, err := list(dst, "destination value")
		if err != nil {
			return nil, err
		}
		src, err := list(value, "source value")
		if err != nil {
			return nil, err
		}
		return append(append([]any(nil), d...), src...), nil
	case "sequence_max", "sequence_min", "sequence_sum":
		shift, err := numArg(0)
		if err != nil {
			return nil, err
		}
		v, err := num(value)
		if err != nil {
			return nil, err
		}
		if dst == nil {
			switch l.Transform.Name {
			case "sequence_min":
				return v + shift, nil
			default:
				dst = shift
			}
		}
		d, err := num(dst)
		if err != nil {
			return nil, err
		}
		switch l.Transform.Name {
		case "sequence_max":
			return max(d, v+shift), nil
		case "sequence_min":
			return min(d, v+shift), nil
		default:
			return d + v, nil
		}
	}
	return nil, fmt.Errorf("unknown link function %q (only soma-workflow's built-in functions are supported)", l.Transform.Name)
}
