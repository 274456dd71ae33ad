package oms_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/alloctest"
)

// TestDecodeStrictIsStrict: the README promises strict bodies; encoding/json alone matches field names in any
// case, lets a repeated key win silently and passes NUL through to PostgreSQL (a 500).
func TestDecodeStrictIsStrict(t *testing.T) {
	const order = `"items":[{"sku":"A","qty":1}],"delivery":{"type":"CC","location":"s1"}`
	testDecodeStrict(t, []strictCase{
		{"field name in another case", `{"Ref":"o1",` + order + `}`, "Ref", `did you mean "ref"`},
		{"nested field name in another case", `{"ref":"o1","items":[{"SKU":"A","qty":1}],"delivery":{"type":"CC","location":"s1"}}`, "items[0].SKU", "case-sensitive"},
		{"duplicate key", `{"ref":"o1","ref":"o2",` + order + `}`, "ref", "given twice"},
		{"duplicate nested key", `{"ref":"o1","items":[{"sku":"A","qty":1,"qty":2}],"delivery":{"type":"CC","location":"s1"}}`, "items[0].qty", "given twice"},
		{"NUL in a string", `{"ref":"o\u00001",` + order + `}`, "ref", "U+0000"},
		{"control character in an address", `{"ref":"o1","items":[{"sku":"A","qty":1}],"delivery":{"type":"HD","address":{"city":"a\u001bb","lat":1,"lon":1}}}`, "delivery.address.city", "U+001B"},
		{"C1 control", `{"ref":"o1\u0085",` + order + `}`, "ref", "U+0085"},
		{"wrong kind refused before decoding", `{"ref":"o1","items":[1,2,3],"delivery":{}}`, "items[0]", "must be an object"},
		{"too many list entries", `{"ref":"o1","items":[` + strings.Repeat(`{},`, oms.MaxListEntries) + `{}]}`, "items", "at most 1000 entries"},
	})
}

func TestDecodeStrictFreeFormData(t *testing.T) {
	var e oms.EventRequest
	require.NoError(t, oms.DecodeStrict(strings.NewReader(`{"type":"x.y","entity":"order:1","data":{"Note":"two\nlines","n":[1,{"a":null}]}}`), &e))
	for _, tc := range []struct{ in, field string }{
		{`{"type":"x.y","entity":"order:1","data":{"note":"a\u0000"}}`, "data.note"},
		{`{"type":"x.y","entity":"order:1","data":{"k\u0000":1}}`, "data.k\x00"},
		{`{"type":"x.y","entity":"order:1","data":{"a":1,"a":2}}`, "data.a"},
		{`{"type":"x.y","entity":"order:1","data":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "data" + strings.Repeat("[0]", oms.MaxJSONDepth-1)},
	} {
		err := oms.DecodeStrict(strings.NewReader(tc.in), &e)
		require.Error(t, err, tc.in)
		assert.Equal(t, oms.EINVALID, oms.ErrorCode(err))
		assert.Equal(t, tc.field, oms.ErrorField(err))
	}
}

// TestDecodeStrictMemoryBound: whatever the shape, decoding a JSON body allocates a small constant plus a bounded
// multiple of its size (before, a 500 KB list of numbers for a list of structs allocated ~130 MB).
func TestDecodeStrictMemoryBound(t *testing.T) {
	bodies := map[string]string{
		"many small fields":       `{"ref":"o1","items":[` + strings.Repeat(`1,`, 250_000) + `1]}`,
		"many empty objects":      `{"ref":"o1","items":[` + strings.Repeat(`{},`, 250_000) + `{}]}`,
		"deep nesting":            `{"type":"x.y","entity":"order:1","data":` + strings.Repeat(`[`, 400_000) + `}`,
		"giant field":             `{"ref":"` + strings.Repeat("x", 1<<20) + `"}`,
		"many free-form keys":     `{"type":"x.y","entity":"order:1","data":{` + strings.Repeat(`"a":1,`, 100_000) + `"b":1}}`,
		"many free-form numbers":  `{"type":"x.y","entity":"order:1","data":[` + strings.Repeat(`1,`, 500_000) + `1]}`,
		"valid order, many items": `{"ref":"o1","items":[` + strings.Repeat(`{"sku":"A","qty":1},`, 999) + `{"sku":"A","qty":1}],"delivery":{"type":"CC","location":"s"}}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			alloctest.Within(t, name, len(body), 64<<10, 100, func() {
				var r struct {
					oms.OrderRequest
					oms.EventRequest
				}
				_ = oms.DecodeStrict(strings.NewReader(body), &r)
			})
		})
	}
}

// FuzzDecodeStrictMemoryBound: whatever the body, strict decoding allocates at most 64 KiB + 100 bytes per byte
// sent, accepts only valid JSON and refuses with a 400 naming a field.
func FuzzDecodeStrictMemoryBound(f *testing.F) {
	for _, s := range []string{`{"type":"x.y","entity":"order:1","data":{"a":[1,2,{"b":"c\n"}]}}`, `{"ref":"o","items":[{},{},{}]}`,
		`{"data":` + strings.Repeat("[", 40), `{"ref":"\u0000"}`, `{"Ref":1,"ref":2}`, `[1,2,3]`, `{"data":{"a":1,"a":1}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var r struct {
			oms.OrderRequest
			oms.EventRequest
		}
		var err error
		alloctest.Within(t, "decode", len(in), 64<<10, 100, func() { err = oms.DecodeStrict(strings.NewReader(in), &r) })
		if err == nil {
			require.True(t, json.Valid([]byte(in)), "accepted invalid JSON")
			return
		}
		require.Equal(t, oms.EINVALID, oms.ErrorCode(err), err.Error())
		require.NotEmpty(t, oms.ErrorField(err), err.Error())
	})
}
