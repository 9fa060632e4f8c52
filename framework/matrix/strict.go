package matrix

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// unknownFields returns an error for every key of value (decoded JSON) that
// the Go type t does not declare, with the key's path
// ("cells[2].lableFilter"), the closest known field and the fields allowed
// at that place.
func unknownFields(value any, t reflect.Type, path string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}

	switch t.Kind() {
	case reflect.Struct:
		object, ok := value.(map[string]any)
		if !ok {
			return nil
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(object))
		for key := range object {
			keys = append(keys, key)
		}
		sort.Strings(keys)

		var errs []error
		for _, key := range keys {
			field, ok := fields[key]
			if !ok {
				errs = append(errs, unknownFieldError(joinPath(path, key), key, fields))
				continue
			}
			errs = append(errs, unknownFields(object[key], field.Type, joinPath(path, key))...)
		}
		return errs

	case reflect.Slice:
		items, ok := value.([]any)
		if !ok {
			return nil
		}
		var errs []error
		for i, item := range items {
			errs = append(errs, unknownFields(item, t.Elem(), path+"["+strconv.Itoa(i)+"]")...)
		}
		return errs
	}
	return nil
}

func unknownFieldError(path, key string, fields map[string]reflect.StructField) error {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)

	if suggestion := closest(key, names); suggestion != "" {
		return fmt.Errorf("unknown field %q: did you mean %q? (allowed here: %s)", path, suggestion, strings.Join(names, ", "))
	}
	return fmt.Errorf("unknown field %q: remove it or use one of %s", path, strings.Join(names, ", "))
}

// jsonFields maps the JSON names of t's exported fields to the fields.
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	fields := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f
	}
	return fields
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// closest returns the candidate nearest to key: one that differs only in
// case, or one within an edit distance of a third of its length (at least
// two). It returns "" when none is that close.
func closest(key string, candidates []string) string {
	best, bestDistance := "", 0
	for _, c := range candidates {
		if strings.EqualFold(c, key) {
			return c
		}
		d := editDistance(strings.ToLower(key), strings.ToLower(c))
		limit := max(2, len(c)/3)
		if d <= limit && (best == "" || d < bestDistance) {
			best, bestDistance = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	previous := make([]int, len(b)+1)
	current := make([]int, len(b)+1)
	for j := range previous {
		previous[j] = j
	}
	for i := 1; i <= len(a); i++ {
		current[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			current[j] = min(previous[j]+1, current[j-1]+1, previous[j-1]+cost)
		}
		previous, current = current, previous
	}
	return previous[len(b)]
}
