// Package alloctest measures what a piece of code allocates, for the tests
// that hold request decoders to their memory budget: a small constant plus a
// bounded multiple of the bytes a client sent.
package alloctest

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
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
	check(t, what, "allocated", Bytes(f), sent, base, perByte)
}

func check(t testing.TB, what, measure string, got uint64, sent int, base, perByte uint64) {
	t.Helper()
	if budget := base + perByte*uint64(sent); got > budget {
		t.Errorf("%s: %s %d bytes for %d bytes sent, budget %d (%d + %d per byte)", what, measure, got, sent, budget, base, perByte)
	}
}

// Peak returns about the most heap f had in use at once (live objects and
// garbage not yet collected), sampled every 200µs with the collector running
// with a tight target (GOGC=10): about what a long stream of small allocations
// holds at once, unlike Bytes, which counts every allocation.
func Peak(f func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	runtime.GC()
	base := read()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			if v := read(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	f()
	close(stop)
	<-done
	if v := read(); v > peak.Load() {
		peak.Store(v)
	}
	if p := peak.Load(); p > base {
		return p - base
	}
	return 0
}

// PeakWithin fails t unless f's peak heap stays at most base + perByte·sent bytes.
func PeakWithin(t testing.TB, what string, sent int, base, perByte uint64, f func()) {
	t.Helper()
	check(t, what, "peak heap", Peak(f), sent, base, perByte)
}
