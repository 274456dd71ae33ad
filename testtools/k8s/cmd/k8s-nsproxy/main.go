// Command k8s-nsproxy forwards TCP connections between the host's network namespace (where the tests run) and one
// that testtools/dataplane-up.sh created. By default it listens on the host and dials inside the namespace (the
// kube-apiserver of the data plane, a Service's ClusterIP as a node sees it); with -reverse it listens inside the
// namespace and dials on the host (a server on 127.0.0.1 that stands in for a managed service at a private IP).
// Nothing is added to the host's network configuration: a socket in the namespace is created by a thread that has
// entered it.
//
//	k8s-nsproxy -netns /run/netns/NS -to 10.0.0.1:443 -listen 127.0.0.1:0 -addr-file F
//	k8s-nsproxy -netns /run/netns/NS -reverse -listen 10.30.0.3:5432 -to 127.0.0.1:41234
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	nsPath := flag.String("netns", "", "network namespace to dial in (a file such as /run/netns/NAME)")
	to := flag.String("to", "", "address to dial inside the namespace (ip:port)")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on in this process's namespace")
	addrFile := flag.String("addr-file", "", "file to write the bound listen address into, once listening")
	reverse := flag.Bool("reverse", false, "listen inside the namespace and dial in this process's")
	flag.Parse()
	if *nsPath == "" || *to == "" {
		log.Fatal("k8s-nsproxy: -netns and -to are required")
	}
	ns, err := os.Open(*nsPath)
	if err != nil {
		log.Fatalf("k8s-nsproxy: %v", err)
	}
	var ln net.Listener
	dial := func(addr string) (net.Conn, error) { return dialIn(ns, addr) }
	if *reverse {
		ln, err = inNetns(ns, func() (net.Listener, error) { return net.Listen("tcp", *listen) })
		dial = func(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 10*time.Second) }
	} else {
		ln, err = net.Listen("tcp", *listen)
	}
	if err != nil {
		log.Fatalf("k8s-nsproxy: %v", err)
	}
	if *addrFile != "" {
		// Written through a rename so that a reader never sees a partial address.
		if err := os.WriteFile(*addrFile+".tmp", []byte(ln.Addr().String()), 0o644); err != nil {
			log.Fatalf("k8s-nsproxy: %v", err)
		}
		if err := os.Rename(*addrFile+".tmp", *addrFile); err != nil {
			log.Fatalf("k8s-nsproxy: %v", err)
		}
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatalf("k8s-nsproxy: %v", err)
		}
		go serve(c, dial, *to)
	}
}

func serve(c net.Conn, dial func(string) (net.Conn, error), to string) {
	defer c.Close()
	up, err := dial(to)
	if err != nil {
		log.Printf("k8s-nsproxy: dial %s: %v", to, err)
		return
	}
	defer up.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		// Half-close so that the other side sees EOF while its answer can still come back.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	go pipe(up, c)
	go pipe(c, up)
	wg.Wait()
}

func dialIn(ns *os.File, addr string) (net.Conn, error) {
	return inNetns(ns, func() (net.Conn, error) { return net.DialTimeout("tcp", addr, 10*time.Second) })
}

// inNetns runs f, which creates a socket, inside the namespace ns. It runs on a goroutine locked to its OS thread
// after setns(2); that goroutine returns without unlocking, so the Go runtime ends the thread instead of reusing it
// in the other namespace. A socket keeps its namespace for its whole life.
func inNetns[T any](ns *os.File, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			var zero T
			ch <- result{zero, fmt.Errorf("setns: %w", err)}
			return
		}
		v, err := f()
		ch <- result{v, err}
	}()
	r := <-ch
	return r.v, r.err
}
