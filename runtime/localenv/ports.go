package localenv

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// Ports handed out by this process; never handed out twice, so concurrent starts in one test binary cannot
// collide with each other. Collisions with other programs are caught at start-up (errAddrInUse) and retried.
var (
	portsMu sync.Mutex
	ports   = map[int]bool{}
)

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	out := make([]int, 0, n)
	for attempts := 0; len(out) < n; attempts++ {
		if attempts > 50*n {
			return nil, fmt.Errorf("pick free ports: no free loopback port after %d attempts", attempts)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick free ports: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		portsMu.Lock()
		fresh := !ports[port]
		ports[port] = true
		portsMu.Unlock()
		if fresh {
			out = append(out, port)
		}
	}
	return out, nil
}

func freePort() (int, error) {
	p, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

// withPortRetry runs start up to three times while it fails because a picked port was taken meanwhile.
func withPortRetry(start func(attempt int) error) error {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = start(attempt); err == nil || !errors.Is(err, errAddrInUse) {
			return err
		}
	}
	return err
}
