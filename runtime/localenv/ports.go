package localenv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
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

// Loopback blocks handed out by this process (see loopbackHosts).
var (
	blocksMu sync.Mutex
	blocks   = map[string]bool{}
)

// loopbackHosts returns n addresses of one /24 in 127.0.0.0/8 (all of it is loopback on Linux) that this process has
// not handed out before, where each of ports was free a moment ago. Servers that share port numbers, like the pods
// of a StatefulSet, each get an address of their own, as pods get their own IP. Collisions with other programs are
// caught at start-up (errAddrInUse) and retried.
func loopbackHosts(n int, ports ...int) ([]string, error) {
	var last error
	for range 20 {
		// 127.0.x.x is left alone: 127.0.0.1 is everyone's, and Debian maps the host name to 127.0.1.1.
		block := fmt.Sprintf("127.%d.%d.", 64+rand.IntN(190), rand.IntN(256))
		blocksMu.Lock()
		fresh := !blocks[block]
		blocks[block] = true
		blocksMu.Unlock()
		if !fresh {
			continue
		}
		hosts := make([]string, n)
		for i := range hosts {
			hosts[i] = block + strconv.Itoa(i+1)
		}
		if last = listenable(hosts, ports); last == nil {
			return hosts, nil
		}
	}
	return nil, fmt.Errorf("pick loopback addresses: ports %v taken on every block tried (does a server listen on them on all interfaces?): %w", ports, last)
}

// listenable checks that every host:port can be listened on.
func listenable(hosts []string, ports []int) error {
	for _, h := range hosts {
		for _, p := range ports {
			l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(p)))
			if err != nil {
				return err
			}
			_ = l.Close()
		}
	}
	return nil
}
