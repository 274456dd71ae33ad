package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ReadyTarget is what the health check probes: the runtime's /readyz URL, sent to the DR site's address rather than
// to wherever DNS points (the primary, until the switch).
type ReadyTarget struct {
	URL     string
	Address string
}

// ReadyProbe returns nil once the DR runtime is ready.
type ReadyProbe func(ctx context.Context, target ReadyTarget) error

func probe(ctx context.Context, o drOptions, target ReadyTarget) error {
	probeCtx, cancel := context.WithTimeout(ctx, o.ReadyTimeout)
	defer cancel()
	if err := o.Probe(probeCtx, target); err != nil {
		return fmt.Errorf("health check %s: %w", target.URL, err)
	}
	return nil
}

// HTTPProbe polls target.URL every 10 seconds until it answers 200 or ctx ends. With target.Address it connects
// there (TLS with the URL's host as server name) instead of where DNS points.
var HTTPProbe = httpProbe(&tls.Config{MinVersion: tls.VersionTLS12}, 10*time.Second)

func httpProbe(tlsConfig *tls.Config, interval time.Duration) ReadyProbe {
	return func(ctx context.Context, target ReadyTarget) error {
		dialer := &net.Dialer{Timeout: 10 * time.Second}
		client := &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					if target.Address != "" {
						_, port, _ := net.SplitHostPort(addr)
						addr = net.JoinHostPort(target.Address, port)
					}
					return dialer.DialContext(ctx, network, addr)
				},
				TLSClientConfig: tlsConfig,
			},
		}
		defer client.CloseIdleConnections()
		var last error
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.URL, nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
				err = fmt.Errorf("status %s", resp.Status)
			}
			last = err
			select {
			case <-ctx.Done():
				return fmt.Errorf("not ready: %w (last: %v)", ctx.Err(), last)
			case <-time.After(interval):
			}
		}
	}
}
