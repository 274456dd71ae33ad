package oms

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
)

// maxLineBytes bounds one input line; longer lines are rejected, not buffered.
const maxLineBytes = 64 << 10

// NewCSVReader reads `sku,location,on_hand` CSV (header required, columns in any order).
// Each record is one line of at most maxLineBytes: a longer line is rejected
// and skipped without being held (no valid field spans lines or needs that much).
func NewCSVReader(r io.Reader) LineReader {
	c := &csvReader{lines: newLineReader(r)}
	c.r = csv.NewReader(&c.cur)
	c.r.FieldsPerRecord = -1 // checked per line, so one short line does not end the batch
	c.r.ReuseRecord = true
	return c
}

type csvReader struct {
	lines   *lineReader
	cur     bytes.Reader // the line being parsed: the csv.Reader sees one line at a time
	r       *csv.Reader
	cols    [3]int // index of sku, location, on_hand
	started bool
}

// read parses the next non-blank line; tooLong reports a line over the bound (not parsed).
func (c *csvReader) read() (rec []string, line int, tooLong bool, err error) {
	for {
		raw, long, err := c.lines.next()
		if err != nil {
			return nil, c.lines.n, false, err
		}
		if long {
			return nil, c.lines.n, true, nil
		}
		if len(bytes.TrimSuffix(raw, []byte("\r"))) == 0 {
			continue // blank lines are not records
		}
		c.cur.Reset(append(raw, '\n'))
		rec, err = c.r.Read()
		if c.cur.Len() > 0 { // an unterminated quote: the rest of the line is the error's
			c.cur.Reset(nil)
		}
		return rec, c.lines.n, false, err
	}
}

func (c *csvReader) header() error {
	rec, _, tooLong, err := c.read()
	if errors.Is(err, io.EOF) {
		return Invalid("header", "empty body: expected a header line sku,location,on_hand")
	}
	if tooLong {
		return Invalid("header", "line longer than %d bytes", maxLineBytes)
	}
	var pe *csv.ParseError
	if err != nil && !errors.As(err, &pe) {
		return fmt.Errorf("read csv: %w", err)
	}
	if err != nil {
		return Invalid("header", "unreadable header: %v", err)
	}
	c.cols = [3]int{-1, -1, -1}
	for i, name := range rec {
		name = strings.TrimSpace(strings.TrimPrefix(name, "\ufeff"))
		var k int
		switch name {
		case "sku":
			k = 0
		case "location":
			k = 1
		case "on_hand":
			k = 2
		default:
			return Invalid("header", "unknown column %q: expected sku,location,on_hand", name)
		}
		if c.cols[k] >= 0 {
			return Invalid("header", "duplicate column %q", name)
		}
		c.cols[k] = i
	}
	for k, name := range []string{"sku", "location", "on_hand"} {
		if c.cols[k] < 0 {
			return Invalid("header", "missing column %q: expected sku,location,on_hand", name)
		}
	}
	return nil
}

func (c *csvReader) Next() (InventoryLine, int, error) {
	if !c.started {
		c.started = true
		if err := c.header(); err != nil {
			return InventoryLine{}, 1, err
		}
	}
	rec, line, tooLong, err := c.read()
	if errors.Is(err, io.EOF) {
		return InventoryLine{}, 0, io.EOF
	}
	if tooLong {
		return InventoryLine{}, line, &LineError{Line: line, Message: fmt.Sprintf("line longer than %d bytes", maxLineBytes)}
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return InventoryLine{}, line, &LineError{Line: line, Message: "malformed CSV: " + pe.Err.Error()}
		}
		return InventoryLine{}, 0, err
	}
	if len(rec) != 3 {
		return InventoryLine{}, line, &LineError{Line: line, Message: fmt.Sprintf("expected 3 fields (sku,location,on_hand), got %d", len(rec))}
	}
	l := InventoryLine{SKU: strings.TrimSpace(rec[c.cols[0]]), Location: strings.TrimSpace(rec[c.cols[1]])}
	n, err := strconv.ParseInt(strings.TrimSpace(rec[c.cols[2]]), 10, 64)
	if err != nil {
		return l, line, &LineError{Line: line, Message: "on_hand: must be a whole number"}
	}
	l.OnHand = n
	if err := l.Validate(); err != nil {
		return l, line, &LineError{Line: line, Message: err.Error()}
	}
	return l, line, nil
}

// NewNDJSONReader reads one {"sku","location","onHand"} object per line.
func NewNDJSONReader(r io.Reader) LineReader {
	return &ndjsonReader{lines: newLineReader(r)}
}

type ndjsonReader struct {
	lines *lineReader
}

type ndjsonLine struct {
	SKU      *string          `json:"sku"`
	Location *string          `json:"location"`
	OnHand   *json.RawMessage `json:"onHand"`
}

func (n *ndjsonReader) Next() (InventoryLine, int, error) {
	for {
		raw, tooLong, err := n.lines.next()
		if err != nil {
			return InventoryLine{}, 0, err
		}
		line := n.lines.n
		if tooLong {
			return InventoryLine{}, line, &LineError{Line: line, Message: fmt.Sprintf("line longer than %d bytes", maxLineBytes)}
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue // blank lines (and a trailing newline) are not lines of data
		}
		l, lerr := parseNDJSONLine(raw)
		if lerr != nil {
			return l, line, &LineError{Line: line, Message: lerr.Error()}
		}
		return l, line, nil
	}
}

// lineReader splits a body into lines of at most maxLineBytes. A longer line is
// consumed and flagged, never buffered whole.
type lineReader struct {
	r   *bufio.Reader
	buf []byte
	n   int // the number of the line last returned
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next line without its newline (valid until the next call), or io.EOF after the last.
func (l *lineReader) next() ([]byte, bool, error) {
	buf := l.buf[:0]
	tooLong := false
	for {
		chunk, err := l.r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > maxLineBytes+1 {
				tooLong, buf = true, buf[:0]
			} else {
				buf = append(buf, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		l.buf = buf
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, false, fmt.Errorf("read line %d: %w", l.n+1, err)
		}
		if err != nil && len(buf) == 0 && !tooLong {
			return nil, false, io.EOF
		}
		l.n++
		return bytes.TrimSuffix(buf, []byte("\n")), tooLong, nil
	}
}

func parseNDJSONLine(raw []byte) (InventoryLine, error) {
	var v ndjsonLine
	if err := DecodeStrictBytes(raw, &v); err != nil {
		return InventoryLine{}, err
	}
	var l InventoryLine
	if v.SKU == nil {
		return l, Invalid("sku", "required")
	}
	if v.Location == nil {
		return l, Invalid("location", "required")
	}
	if v.OnHand == nil {
		return l, Invalid("onHand", "required")
	}
	l.SKU, l.Location = *v.SKU, *v.Location
	n, err := strconv.ParseInt(string(*v.OnHand), 10, 64)
	if err != nil {
		return l, Invalid("onHand", "must be a whole number")
	}
	l.OnHand = n
	if err := l.Validate(); err != nil {
		var e *Error
		if errors.As(err, &e) && e.Field == "on_hand" {
			e.Field = "onHand"
		}
		return l, err
	}
	return l, nil
}

// DecodeStrict decodes exactly one JSON value into v, rejecting unknown or
// misspelt (case-sensitive) fields, repeated keys, control characters, wrong
// types, deep nesting, long lists and trailing data with an *Error naming the
// field. The caller bounds r (the body limit); the value is checked before
// anything is decoded, so decoding allocates about what was sent.
func DecodeStrict(r io.Reader, v any) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	return DecodeStrictBytes(data, v)
}

// DecodeStrictBytes is DecodeStrict on a body already read.
func DecodeStrictBytes(data []byte, v any) error {
	if err := checkStrict(data, reflect.TypeOf(v)); err != nil {
		return err
	}
	// checkStrict refused unknown fields and trailing data already.
	if err := json.Unmarshal(data, v); err != nil {
		return jsonError(err)
	}
	return nil
}

func jsonError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return Invalid("body", "empty: expected a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Invalid("body", "truncated JSON")
	case errors.As(err, &syn):
		return Invalid("body", "malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return Invalid(field, "must be %s, got %s", jsonKind(typ.Type.Kind().String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		if name == "" {
			return Invalid("body", "unknown field %q", name)
		}
		return Invalid(name, "unknown field")
	}
	return fmt.Errorf("read body: %w", err) // I/O or size limit, not the client's JSON
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "int32", "uint", "uint64":
		return "a whole number"
	case "float64", "float32":
		return "a number"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	case "bool":
		return "true or false"
	}
	return k
}
