package oms_test

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/alloctest"
)

type readResult struct {
	lines    []oms.InventoryLine
	rejected []int
	fatal    error
}

func readAll(t testing.TB, r oms.LineReader) readResult {
	var res readResult
	for i := 0; ; i++ {
		if i > 1_000_000 {
			t.Fatal("reader does not terminate")
		}
		l, n, err := r.Next()
		var le *oms.LineError
		switch {
		case errors.Is(err, io.EOF):
			return res
		case errors.As(err, &le):
			res.rejected = append(res.rejected, le.Line)
			if le.Line != n {
				t.Fatalf("line error %d reported as line %d", le.Line, n)
			}
		case err != nil:
			res.fatal = err
			return res
		default:
			res.lines = append(res.lines, l)
		}
	}
}

func TestCSVReader(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		lines    []oms.InventoryLine
		rejected []int
		field    string // of a fatal error
	}{
		{"valid", "sku,location,on_hand\nA,l1,5\nB,l2,0\n", []oms.InventoryLine{{"A", "l1", 5}, {"B", "l2", 0}}, nil, ""},
		{"columns in any order, no trailing newline", "on_hand,sku,location\n7,A,l1", []oms.InventoryLine{{"A", "l1", 7}}, nil, ""},
		{"bad lines reported by number", "sku,location,on_hand\nA,l1,-1\nB,l1,x\nC,l1\n,l1,3\nD,l1,2\n",
			[]oms.InventoryLine{{"D", "l1", 2}}, []int{2, 3, 4, 5}, ""},
		{"quoted fields", "sku,location,on_hand\n\"A\",\"l1\",\"4\"\n", []oms.InventoryLine{{"A", "l1", 4}}, nil, ""},
		{"bare quote rejected, reading continues", "sku,location,on_hand\nA\"x,l1,1\nB,l1,2\n", []oms.InventoryLine{{"B", "l1", 2}}, []int{2}, ""},
		{"empty body", "", nil, nil, "header"},
		{"unknown column", "sku,where,on_hand\nA,l1,1\n", nil, nil, "header"},
		{"missing column", "sku,location\nA,l1\n", nil, nil, "header"},
		{"duplicate column", "sku,sku,on_hand\n", nil, nil, "header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := readAll(t, oms.NewCSVReader(strings.NewReader(tc.in)))
			if tc.field != "" {
				require.Error(t, res.fatal)
				assert.Equal(t, tc.field, oms.ErrorField(res.fatal))
				return
			}
			require.NoError(t, res.fatal)
			assert.Equal(t, tc.lines, res.lines)
			assert.Equal(t, tc.rejected, res.rejected)
		})
	}
}

func TestNDJSONReader(t *testing.T) {
	long := `{"sku":"A","location":"l1","onHand":1,"pad":"` + strings.Repeat("x", 70<<10) + `"}`
	tests := []struct {
		name     string
		in       string
		lines    []oms.InventoryLine
		rejected []int
		msg      string
	}{
		{"valid with blank lines", "{\"sku\":\"A\",\"location\":\"l1\",\"onHand\":5}\n\n{\"sku\":\"B\",\"location\":\"l2\",\"onHand\":0}",
			[]oms.InventoryLine{{"A", "l1", 5}, {"B", "l2", 0}}, nil, ""},
		{"unknown field", `{"sku":"A","location":"l1","onHand":5,"x":1}`, nil, []int{1}, "x: unknown field"},
		{"missing onHand", `{"sku":"A","location":"l1"}`, nil, []int{1}, "onHand: required"},
		{"fraction", `{"sku":"A","location":"l1","onHand":1.5}`, nil, []int{1}, "onHand: must be a whole number"},
		{"negative", `{"sku":"A","location":"l1","onHand":-2}`, nil, []int{1}, "onHand: must be between"},
		{"not json", "nope\n{\"sku\":\"A\",\"location\":\"l1\",\"onHand\":1}", []oms.InventoryLine{{"A", "l1", 1}}, []int{1}, "malformed JSON"},
		{"two values on a line", `{"sku":"A","location":"l1","onHand":1}{}`, nil, []int{1}, "unexpected data"},
		{"overlong line skipped", long + "\n{\"sku\":\"B\",\"location\":\"l1\",\"onHand\":1}\n", []oms.InventoryLine{{"B", "l1", 1}}, []int{1}, "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := oms.NewNDJSONReader(strings.NewReader(tc.in))
			res := readAll(t, r)
			require.NoError(t, res.fatal)
			assert.Equal(t, tc.lines, res.lines)
			assert.Equal(t, tc.rejected, res.rejected)
			if tc.msg != "" {
				_, _, err := oms.NewNDJSONReader(strings.NewReader(tc.in)).Next()
				assert.ErrorContains(t, err, tc.msg)
			}
		})
	}
}

func TestDecodeStrictNamesTheField(t *testing.T) {
	testDecodeStrict(t, []strictCase{
		{"wrong type", `{"ref":"a","items":[{"sku":"A","qty":"1"}]}`, "items[0].qty", ""},
		{"unknown field", `{"ref":"a","bogus":true}`, "bogus", ""},
		{"nested wrong type", `{"ref":"a","delivery":{"type":"HD","address":{"lat":"x"}}}`, "delivery.address.lat", ""},
		{"truncated", `{"ref":`, "body", ""},
		{"empty", ``, "body", ""},
		{"two values", `{} {}`, "body", ""},
		{"not an object", `[1]`, "body", ""},
	})
}

type strictCase struct{ name, in, field, msg string }

// testDecodeStrict decodes each case's body as an order request: it must fail with a 400 naming the field.
func testDecodeStrict(t *testing.T, tests []strictCase) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r oms.OrderRequest
			err := oms.DecodeStrict(strings.NewReader(tc.in), &r)
			require.Error(t, err)
			assert.Equal(t, oms.EINVALID, oms.ErrorCode(err))
			assert.Equal(t, tc.field, oms.ErrorField(err))
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

// Fuzz targets: their seed corpora run as ordinary tests; `go test -fuzz` explores further.

func FuzzCSVReader(f *testing.F) {
	for _, s := range []string{"sku,location,on_hand\nA,l1,5\n", "on_hand,sku,location\n1,A,l\n", "sku,location,on_hand\n\"A\nB\",l,1\n",
		"sku,location,on_hand\nA\"x,l1,1\n", "sku,location,on_hand\r\nA,l,9999999999999999999\r\n", "\ufeffsku,location,on_hand\nA,l,1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		res := readAll(t, oms.NewCSVReader(strings.NewReader(in)))
		for _, l := range res.lines {
			require.NoError(t, l.Validate(), "a returned line must be valid")
		}
		if res.fatal != nil && oms.ErrorCode(res.fatal) == oms.EINVALID {
			require.NotEmpty(t, oms.ErrorField(res.fatal))
		}
		require.LessOrEqual(t, len(res.lines)+len(res.rejected), strings.Count(in, "\n")+1)
	})
}

func FuzzNDJSONReader(f *testing.F) {
	for _, s := range []string{`{"sku":"A","location":"l1","onHand":5}`, "{\"sku\":\"A\",\"location\":\"l\",\"onHand\":1}\n\n{}\n",
		`{"sku":"A","location":"l1","onHand":1e3}`, `{"sku":null,"location":"l","onHand":1}`, "[]\n\"x\"\n", `{"sku":"A\u0000"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		res := readAll(t, oms.NewNDJSONReader(strings.NewReader(in)))
		require.NoError(t, res.fatal, "NDJSON lines never fail the whole batch")
		for _, l := range res.lines {
			require.NoError(t, l.Validate())
			// A valid line survives a round trip unchanged.
			b, err := json.Marshal(map[string]any{"sku": l.SKU, "location": l.Location, "onHand": l.OnHand})
			require.NoError(t, err)
			again := readAll(t, oms.NewNDJSONReader(strings.NewReader(string(b))))
			require.Equal(t, []oms.InventoryLine{l}, again.lines)
		}
		prev := 0
		for _, n := range res.rejected {
			require.Greater(t, n, prev, "line numbers increase")
			prev = n
		}
	})
}

func FuzzOrderRequestJSON(f *testing.F) {
	for _, s := range []string{
		`{"ref":"o1","items":[{"sku":"A","qty":1}],"delivery":{"type":"HD","address":{"lat":1,"lon":2}}}`,
		`{"ref":"o1","items":[{"sku":"A","qty":1}],"delivery":{"type":"CC","location":"s1"}}`,
		`{"ref":"o1","items":[{"sku":"A","qty":1},{"sku":"A","qty":2}],"delivery":{"type":"CC","location":"s1"}}`,
		`{"ref":"","items":null}`, `{"items":[{"qty":-1}]}`, `{"ref":"o","items":[{"sku":"A","qty":1e40}]}`, `nul`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var r oms.OrderRequest
		err := oms.DecodeStrict(strings.NewReader(in), &r)
		if err == nil {
			err = r.Validate()
		}
		if err != nil {
			// Every rejection is a client error that names what to fix.
			require.Equal(t, oms.EINVALID, oms.ErrorCode(err), err.Error())
			require.NotEmpty(t, oms.ErrorField(err), err.Error())
			return
		}
		require.NotEmpty(t, r.Items)
		for _, it := range r.Items {
			require.Positive(t, it.Qty)
		}
	})
}

// TestBatchReadersMemoryBound: an inventory batch is read line by line in a constant amount of memory, whatever
// its shape: before, a single 100 MB CSV field was held whole (~500 MB RSS).
func TestBatchReadersMemoryBound(t *testing.T) {
	const header = "sku,location,on_hand\n"
	ndLine := `{"sku":"A","location":"l1","onHand":1}` + "\n"
	for _, tc := range []struct {
		name, format string
		body         func() string
		lines        int
		rejected     []int
	}{
		{"csv giant field", "csv", func() string { return header + "A,l1,1\n" + strings.Repeat("x", 20<<20) + ",l1,1\nB,l1,2\n" }, 2, []int{3}},
		{"csv giant quoted field", "csv", func() string { return header + "\"" + strings.Repeat("x,\n", 7<<20) + "\",l1,1\nB,l1,2\n" }, 1, nil},
		{"csv giant header", "csv", func() string { return strings.Repeat("x", 20<<20) + "\nA,l1,1\n" }, 0, nil},
		{"csv many small fields", "csv", func() string { return header + strings.Repeat(",", 20<<20) + "\nB,l1,2\n" }, 1, []int{2}},
		{"csv many lines", "csv", func() string { return header + strings.Repeat("A,l1,1\n", 1<<20) }, 1 << 20, nil},
		{"ndjson giant line", "ndjson", func() string { return ndLine + `{"sku":"` + strings.Repeat("x", 20<<20) + "\"}\n" + ndLine }, 2, []int{2}},
		{"ndjson deep nesting", "ndjson", func() string { return strings.Repeat("[", 20<<20) + "\n" + ndLine }, 1, []int{1}},
		{"ndjson many lines", "ndjson", func() string { return strings.Repeat(ndLine, 1<<19) }, 1 << 19, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body()
			var r oms.LineReader
			lines, rejected := 0, []int(nil)
			alloctest.PeakWithin(t, tc.name, len(body), 32<<20, 0, func() {
				if tc.format == "csv" {
					r = oms.NewCSVReader(strings.NewReader(body))
				} else {
					r = oms.NewNDJSONReader(strings.NewReader(body))
				}
				for {
					_, n, err := r.Next()
					var le *oms.LineError
					switch {
					case errors.Is(err, io.EOF):
						return
					case errors.As(err, &le):
						if len(rejected) < 10 {
							rejected = append(rejected, n)
						}
						continue
					case err != nil:
						return
					}
					lines++
				}
			})
			if tc.lines > 0 {
				assert.Equal(t, tc.lines, lines)
			}
			if tc.rejected != nil {
				assert.Equal(t, tc.rejected, rejected)
			}
		})
	}
}
