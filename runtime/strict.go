package oms

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// Limits of every JSON body (and of each NDJSON line), checked while the body
// is scanned and before anything is decoded into values.
const (
	// MaxJSONDepth bounds the nesting of objects and arrays.
	MaxJSONDepth = 32
	// MaxListEntries bounds an array decoded into a list of values (order items,
	// workflow rules, ...); tighter limits are checked after decoding. Free-form
	// JSON such as event data is bounded by its size only.
	MaxListEntries = 1000
)

// checkStrict scans one JSON value against the Go type it will be decoded
// into, before decoding: field names must match exactly (encoding/json would
// accept any case), no object may repeat a key, no string or key may hold a
// control character, nesting and lists are bounded, and each value must have
// the JSON kind its field expects, so a wrong type is refused before a list of
// structs is allocated for it. Errors name the field as a JSON path.
func checkStrict(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	s := &scanner{dec: dec}
	if err := s.value(t, ""); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Invalid("body", "unexpected data after the JSON value")
	}
	return nil
}

type scanner struct {
	dec   *json.Decoder
	depth int
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// free reports whether values of t are decoded by their own code (json.RawMessage,
// time.Time) or into interfaces: only the syntax rules apply to them.
func free(t reflect.Type) bool {
	if t == nil || t.Kind() == reflect.Interface {
		return true
	}
	p := reflect.PointerTo(t)
	return t.Implements(unmarshalerType) || p.Implements(unmarshalerType) ||
		t.Implements(textUnmarshalerType) || p.Implements(textUnmarshalerType)
}

func (s *scanner) value(t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer && !free(t) {
		t = t.Elem()
	}
	if t != nil && free(t) {
		t = nil
	}
	tok, err := s.dec.Token()
	if err != nil {
		return jsonError(err)
	}
	switch v := tok.(type) {
	case json.Delim:
		if s.depth++; s.depth > MaxJSONDepth {
			return Invalid(orBody(path), "nested deeper than %d levels", MaxJSONDepth)
		}
		defer func() { s.depth-- }()
		if v == '{' {
			return s.object(t, path)
		}
		return s.array(t, path)
	case string:
		if err := CheckText(orBody(path), v); err != nil {
			return err
		}
		return expect(t, path, "a string", reflect.String)
	case json.Number:
		return expect(t, path, "a number", reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64)
	case bool:
		return expect(t, path, "true or false", reflect.Bool)
	}
	return nil // null sets nothing
}

// expect checks that a scalar of the given JSON kind fits t.
func expect(t reflect.Type, path, got string, kinds ...reflect.Kind) error {
	if t == nil {
		return nil
	}
	for _, k := range kinds {
		if t.Kind() == k {
			return nil
		}
	}
	return Invalid(orBody(path), "must be %s, got %s", jsonKind(t.Kind().String()), got)
}

func (s *scanner) object(t reflect.Type, path string) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	switch {
	case t == nil:
	case t.Kind() == reflect.Struct:
		fields = structFields(t)
	case t.Kind() == reflect.Map:
		elem = t.Elem()
	default:
		return Invalid(orBody(path), "must be %s, got an object", jsonKind(t.Kind().String()))
	}
	seen := map[string]bool{}
	for s.dec.More() {
		tok, err := s.dec.Token()
		if err != nil {
			return jsonError(err)
		}
		key := tok.(string)
		field := joinPath(path, key)
		if err := CheckText(field, key); err != nil {
			return err
		}
		if seen[key] {
			return Invalid(field, "given twice: each field at most once")
		}
		seen[key] = true
		ft := elem
		if fields != nil {
			var ok bool
			if ft, ok = fields[key]; !ok {
				for name := range fields {
					if strings.EqualFold(name, key) {
						return Invalid(field, "unknown field: names are case-sensitive, did you mean %q?", name)
					}
				}
				return Invalid(field, "unknown field")
			}
		}
		if err := s.value(ft, field); err != nil {
			return err
		}
	}
	_, err := s.dec.Token() // '}'
	return jsonErrorOrNil(err)
}

func (s *scanner) array(t reflect.Type, path string) error {
	var elem reflect.Type
	if t != nil {
		if k := t.Kind(); k != reflect.Slice && k != reflect.Array {
			return Invalid(orBody(path), "must be %s, got an array", jsonKind(k.String()))
		}
		elem = t.Elem()
	}
	for i := 0; s.dec.More(); i++ {
		if t != nil && i >= MaxListEntries {
			return Invalid(orBody(path), "at most %d entries", MaxListEntries)
		}
		if err := s.value(elem, path+"["+strconv.Itoa(i)+"]"); err != nil {
			return err
		}
	}
	_, err := s.dec.Token() // ']'
	return jsonErrorOrNil(err)
}

func jsonErrorOrNil(err error) error {
	if err != nil {
		return jsonError(err)
	}
	return nil
}

func joinPath(path, key string) string {
	if key == "" {
		key = `""` // still names something
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func orBody(path string) string {
	if path == "" {
		return "body"
	}
	return path
}

var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// structFields maps the JSON names of t's fields (embedded structs' too) to their types.
func structFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range structFields(ft) {
					if _, ok := m[k]; !ok {
						m[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	fieldCache.Store(t, m)
	return m
}

// CheckText refuses control characters in a string a client sent: C0 (except
// tab, line feed and carriage return), DEL and C1. NUL in particular cannot be
// stored by PostgreSQL.
func CheckText(field, v string) error {
	for i, r := range v {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || (r >= 0x7f && r <= 0x9f) {
			return Invalid(field, "control character U+%04X at byte %d: not allowed", r, i)
		}
	}
	return nil
}

// CheckLine is CheckText for single-line values (names, address lines): tab,
// line feed and carriage return are refused too.
func CheckLine(field, v string) error {
	if i := strings.IndexAny(v, "\t\n\r"); i >= 0 {
		return Invalid(field, "control character U+%04X at byte %d: not allowed", v[i], i)
	}
	return CheckText(field, v)
}
