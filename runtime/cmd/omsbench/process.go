package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// process is an oms subcommand running as a child process.
type process struct {
	cmd  *exec.Cmd
	addr string
	// opsAddr serves /metrics (and, with OMS_PPROF, Go's profiles): serve's --metrics-listen, else addr.
	opsAddr  string
	stopOnce sync.Once
}

func startProcess(ctx context.Context, bin string, env []string, sub string) (*process, error) {
	cmd := exec.Command(bin, sub)
	cmd.Env = append(env, "OMS_LOG_LEVEL=info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd}
	addrc, opsc := make(chan string, 1), make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec struct {
				Msg, Addr, Level string
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				switch rec.Msg {
				case "listening":
					addrc <- rec.Addr
				case "metrics listening": // logged before "listening"
					opsc <- rec.Addr
				}
				if rec.Level == "WARN" || rec.Level == "ERROR" {
					fmt.Fprintf(os.Stderr, "  oms %s: %s\n", sub, sc.Bytes())
				}
			}
		}
	}()
	select {
	case p.addr = <-addrc:
		select {
		case p.opsAddr = <-opsc:
		default:
			p.opsAddr = p.addr
		}
		return p, nil
	case <-time.After(60 * time.Second):
		p.stop()
		return nil, fmt.Errorf("oms %s did not start", sub)
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// stop sends SIGTERM (a graceful drain), then SIGKILL after 30 s; later calls do nothing.
func (p *process) stop() {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
	})
}
