package oms

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"slices"
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
	s := &scanner{data: data}
	s.ws()
	if s.pos == len(data) {
		return Invalid("body", "empty: expected a JSON object")
	}
	if err := s.value(t, ""); err != nil {
		return err
	}
	if s.ws(); s.pos != len(data) {
		return Invalid("body", "unexpected data after the JSON value")
	}
	return nil
}

// scanner walks JSON bytes without building values: the syntax is checked
// here as far as the rules need it, and in full by encoding/json afterwards.
type scanner struct {
	data  []byte
	pos   int
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
	if f, ok := freeCache.Load(t); ok {
		return f.(bool)
	}
	p := reflect.PointerTo(t)
	f := t.Implements(unmarshalerType) || p.Implements(unmarshalerType) ||
		t.Implements(textUnmarshalerType) || p.Implements(textUnmarshalerType)
	freeCache.Store(t, f)
	return f
}

var freeCache sync.Map // reflect.Type → bool

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// next skips white space and returns the next byte; false at the end (a truncated body).
func (s *scanner) next() (byte, bool) {
	s.ws()
	if s.pos >= len(s.data) {
		return 0, false
	}
	return s.data[s.pos], true
}

func (s *scanner) syntax(what string) error {
	if s.pos >= len(s.data) {
		return Invalid("body", "truncated JSON")
	}
	return Invalid("body", "malformed JSON at byte %d: %s, found %q", s.pos, what, s.data[s.pos])
}

func (s *scanner) value(t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer && !free(t) {
		t = t.Elem()
	}
	if t != nil && free(t) {
		t = nil
	}
	c, ok := s.next()
	if !ok {
		return s.syntax("expected a value")
	}
	switch {
	case c == '{' || c == '[':
		if s.depth++; s.depth > MaxJSONDepth {
			return Invalid(orBody(path), "nested deeper than %d levels", MaxJSONDepth)
		}
		defer func() { s.depth-- }()
		s.pos++
		if c == '{' {
			return s.object(t, path)
		}
		return s.array(t, path)
	case c == '"':
		v, err := s.str(path)
		if err != nil {
			return err
		}
		if err := CheckText(orBody(path), v); err != nil {
			return err
		}
		return expect(t, path, "a string", reflect.String)
	case c == 't' || c == 'f':
		if !s.literal("true") && !s.literal("false") {
			return s.syntax("expected true or false")
		}
		return expect(t, path, "true or false", reflect.Bool)
	case c == 'n':
		if !s.literal("null") {
			return s.syntax("expected null")
		}
		return nil // null sets nothing
	case c == '-' || (c >= '0' && c <= '9'):
		for s.pos < len(s.data) && strings.IndexByte("+-.0123456789eE", s.data[s.pos]) >= 0 {
			s.pos++ // the number's form is encoding/json's to check
		}
		return expect(t, path, "a number", reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64)
	}
	return s.syntax("expected a value")
}

func (s *scanner) literal(lit string) bool {
	if bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		s.pos += len(lit)
		return true
	}
	return false
}

// str reads the string at s.pos (its opening quote).
func (s *scanner) str(path string) (string, error) {
	start := s.pos
	escaped := false
	for s.pos++; s.pos < len(s.data); s.pos++ {
		switch c := s.data[s.pos]; {
		case c == '\\':
			escaped = true
			s.pos++
		case c == '"':
			s.pos++
			if !escaped {
				return string(s.data[start+1 : s.pos-1]), nil
			}
			var v string
			if err := json.Unmarshal(s.data[start:s.pos], &v); err != nil {
				s.pos = start
				return "", s.syntax("invalid string")
			}
			return v, nil
		case c < 0x20:
			return "", Invalid(orBody(path), "control character U+%04X at byte %d: not allowed", c, s.pos-start-1)
		}
	}
	return "", s.syntax("unterminated string")
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
	var seen []string // objects are small; a map only pays off for large free-form ones
	var seenMap map[string]bool
	if s.closes('}') {
		return nil
	}
	for {
		if c, ok := s.next(); !ok || c != '"' {
			return s.syntax("expected a field name")
		}
		key, err := s.str(path)
		if err != nil {
			return err
		}
		field := joinPath(path, key)
		if err := CheckText(field, key); err != nil {
			return err
		}
		if repeated(&seen, &seenMap, key) {
			return Invalid(field, "given twice: each field at most once")
		}
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
		if c, ok := s.next(); !ok || c != ':' {
			return s.syntax("expected ':'")
		}
		s.pos++
		if err := s.value(ft, field); err != nil {
			return err
		}
		if done, err := s.end('}'); done || err != nil {
			return err
		}
	}
}

// closes consumes close if it comes next: an empty object or array.
func (s *scanner) closes(close byte) bool {
	if c, ok := s.next(); ok && c == close {
		s.pos++
		return true
	}
	return false
}

// end reads the ',' before another member or element, or close after the last.
func (s *scanner) end(close byte) (done bool, err error) {
	c, ok := s.next()
	if !ok || (c != ',' && c != close) {
		return false, s.syntax("expected ',' or '" + string(close) + "'")
	}
	s.pos++
	return c == close, nil
}

// repeated records key and reports whether it was recorded before.
func repeated(seen *[]string, seenMap *map[string]bool, key string) bool {
	if *seenMap == nil {
		if slices.Contains(*seen, key) {
			return true
		}
		if *seen = append(*seen, key); len(*seen) <= 16 {
			return false
		}
		*seenMap = make(map[string]bool, 32)
		for _, k := range *seen {
			(*seenMap)[k] = true
		}
		return false
	}
	if (*seenMap)[key] {
		return true
	}
	(*seenMap)[key] = true
	return false
}

func (s *scanner) array(t reflect.Type, path string) error {
	var elem reflect.Type
	if t != nil {
		if k := t.Kind(); k != reflect.Slice && k != reflect.Array {
			return Invalid(orBody(path), "must be %s, got an array", jsonKind(k.String()))
		}
		elem = t.Elem()
	}
	if s.closes(']') {
		return nil
	}
	for i := 0; ; i++ {
		if t != nil && i >= MaxListEntries {
			return Invalid(orBody(path), "at most %d entries", MaxListEntries)
		}
		if err := s.value(elem, path+"["+strconv.Itoa(i)+"]"); err != nil {
			return err
		}
		if done, err := s.end(']'); done || err != nil {
			return err
		}
	}
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
