// Package alloctest measures what a piece of code allocates, for the tests
// that hold request decoders to their memory budget: a small constant plus a
// bounded multiple of the bytes a client sent.
package alloctest

import (
	"runtime"
	"testing"
)

// Bytes returns the bytes f allocated on the heap (runtime.MemStats.TotalAlloc):
// an upper bound of what it held at once.
func Bytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Within fails t unless f allocates at most base + perByte·sent bytes.
func Within(t testing.TB, what string, sent int, base, perByte uint64, f func()) {
	t.Helper()
	got := Bytes(f)
	budget := base + perByte*uint64(sent)
	if got > budget {
		t.Errorf("%s: allocated %d bytes for %d bytes sent, budget %d (%d + %d per byte)", what, got, sent, budget, base, perByte)
	}
}
