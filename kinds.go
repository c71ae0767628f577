package eventbus

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
)

// The rules the Validate methods of the six event kinds share. Each check
// returns nil or one error that starts with the field's JSON name, so the
// Validate methods can hand their checks straight to errors.Join; the
// success path allocates nothing, because Publish runs it for every event.

// maxValueDepth bounds how deep Validate looks into the values of a
// map[string]any field. A deeper value is rejected: no metric nests that
// deep, and a cyclic value (a map that holds itself) would otherwise recurse
// until the stack overflows, which no recover can stop.
const maxValueDepth = 64

func fieldErr(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func notFinite(f float64) string { return fmt.Sprintf("%v is not a finite number", f) }

func checkFinite(field string, f float64) error {
	if !finite(f) {
		return fieldErr(field, "%s", notFinite(f))
	}
	return nil
}

// checkPositive checks a size or a price.
func checkPositive(field string, f float64) error {
	if err := checkFinite(field, f); err != nil {
		return err
	}
	if f <= 0 {
		return fieldErr(field, "%v is not positive", f)
	}
	return nil
}

func checkNotNegative(field string, n int) error {
	if n < 0 {
		return fieldErr(field, "%d is negative", n)
	}
	return nil
}

func checkNotEmpty(field, s string) error {
	if s == "" {
		return fieldErr(field, "empty")
	}
	return nil
}

// checkNoneEmpty checks a list of ids or symbols, naming the first empty one.
func checkNoneEmpty(field string, list []string) error {
	if i := slices.Index(list, ""); i >= 0 {
		return fieldErr(fmt.Sprintf("%s[%d]", field, i), "empty")
	}
	return nil
}

func checkEnum[E ~string](field string, v E, known []E) error {
	if slices.Contains(known, v) {
		return nil
	}
	return fieldErr(field, "unknown value %q (want %s)", string(v), enumList(known))
}

// enumString is the String method of the enums: the value itself when it is
// known, and a form no one takes for a valid value otherwise.
func enumString[E ~string](v E, known []E) string {
	if slices.Contains(known, v) {
		return string(v)
	}
	return fmt.Sprintf("%T(%q)", v, string(v))
}

// enumList is "A, B or C".
func enumList[E ~string](known []E) string {
	var b strings.Builder
	for i, v := range known {
		switch {
		case i == 0:
		case i == len(known)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(string(v))
	}
	return b.String()
}

// checkMap checks every value of a map field with bad: badFloat for a
// metrics or scores map, badValue for a map[string]any at any depth. The
// path to a bad value is worked out only once one has been found, so that a
// valid map costs no allocation.
func checkMap[V any](field string, m map[string]V, bad func(V, int, bool) (string, string, bool)) error {
	if _, _, found := badInMap(m, 0, false, bad); found {
		path, problem, _ := badInMap(m, 0, true, bad)
		return fieldErr(field+path, "%s", problem)
	}
	return nil
}

// badValue finds in v, a value of a map[string]any field, a NaN or an
// infinity, or nesting deeper than maxValueDepth. It reports whether there
// is one, and if describe is set also the path to it from v (such as
// `["a"][2]`) and what is wrong.
//
// Without describe it stops at the first one it meets and builds no string,
// which keeps Validate free of allocations. With describe it visits map
// entries in key order, so the error does not depend on map order. Either
// way it returns at the first find, so a cyclic value costs time in
// proportion to maxValueDepth, not exponential time.
//
// The shapes encoding/json decodes into, and slices and maps of float64, are
// walked without reflection; other types through it.
func badValue(v any, depth int, describe bool) (path, problem string, found bool) {
	if depth > maxValueDepth {
		return "", tooDeep, true
	}
	switch v := v.(type) {
	case nil, string, bool:
		return "", "", false
	case float64:
		return badFloat(v, depth, describe)
	case map[string]any:
		return badInMap(v, depth, describe, badValue)
	case []any:
		return badInSlice(v, depth, describe, badValue)
	case map[string]float64:
		return badInMap(v, depth, describe, badFloat)
	case []float64:
		return badInSlice(v, depth, describe, badFloat)
	}
	return badReflect(reflect.ValueOf(v), depth, describe)
}

var tooDeep = fmt.Sprintf("nested deeper than %d levels", maxValueDepth)

func badFloat(f float64, _ int, describe bool) (path, problem string, found bool) {
	if finite(f) {
		return "", "", false
	}
	if describe {
		problem = notFinite(f)
	}
	return "", problem, true
}

func badInMap[V any](m map[string]V, depth int, describe bool, bad func(V, int, bool) (string, string, bool)) (path, problem string, found bool) {
	if !describe {
		for _, v := range m {
			if _, _, found := bad(v, depth+1, false); found {
				return "", "", true
			}
		}
		return "", "", false
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if path, problem, found := bad(m[k], depth+1, true); found {
			return fmt.Sprintf("[%q]", k) + path, problem, true
		}
	}
	return "", "", false
}

func badInSlice[V any](s []V, depth int, describe bool, bad func(V, int, bool) (string, string, bool)) (path, problem string, found bool) {
	for i, v := range s {
		if path, problem, found := bad(v, depth+1, describe); found {
			if describe {
				path = fmt.Sprintf("[%d]", i) + path
			}
			return path, problem, true
		}
	}
	return "", "", false
}

// badReflect is badValue for values of other types, such as []float32,
// map[string]int or a struct, walked as encoding/json would encode them.
func badReflect(v reflect.Value, depth int, describe bool) (path, problem string, found bool) {
	if depth > maxValueDepth {
		return "", tooDeep, true
	}
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		return badFloat(v.Float(), depth, describe)
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return badReflect(v.Elem(), depth+1, describe)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if path, problem, found := badReflect(v.Index(i), depth+1, describe); found {
				if describe {
					path = fmt.Sprintf("[%d]", i) + path
				}
				return path, problem, true
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			if !t.Field(i).IsExported() {
				continue
			}
			if path, problem, found := badReflect(v.Field(i), depth+1, describe); found {
				if describe {
					path = "." + t.Field(i).Name + path
				}
				return path, problem, true
			}
		}
	case reflect.Map:
		if !describe {
			for it := v.MapRange(); it.Next(); {
				if _, _, found := badReflect(it.Value(), depth+1, false); found {
					return "", "", true
				}
			}
			return "", "", false
		}
		type entry struct {
			name string
			key  reflect.Value
		}
		var entries []entry
		for _, k := range v.MapKeys() {
			entries = append(entries, entry{fmt.Sprintf("[%#v]", k), k})
		}
		slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })
		for _, e := range entries {
			if path, problem, found := badReflect(v.MapIndex(e.key), depth+1, true); found {
				return e.name + path, problem, true
			}
		}
	}
	return "", "", false
}
