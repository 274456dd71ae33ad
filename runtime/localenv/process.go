package localenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// errAddrInUse marks a start that failed because a picked port was taken in the meantime; starters retry
// with fresh ports.
var errAddrInUse = errors.New("address already in use")

// osUser is the system account a server runs as. A nil *osUser means the current user.
type osUser struct {
	name     string
	uid, gid int
	home     string
}

// serviceUser returns the system account to run a server as: the named account when this process is root
// (PostgreSQL refuses to run as root and RabbitMQ should not), nil (the current user) otherwise.
func serviceUser(name string) (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("running as root needs the system user %q (created by its Debian package; run scripts/install-services.sh): %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &osUser{name: name, uid: uid, gid: gid, home: u.HomeDir}, nil
}

// chown hands path (recursively) to u; a no-op for the current user.
func (u *osUser) chown(path string) error {
	if u == nil {
		return nil
	}
	return filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, u.uid, u.gid)
	})
}

// mkdir creates dir (and parents) owned by u.
func (u *osUser) mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return u.chown(dir)
}

// writeFile writes a file owned by u.
func (u *osUser) writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	return u.chown(path)
}

// ensureReachable makes sure u can traverse every directory down to dir. Test temp directories are 0700 and
// owned by root, which a service user cannot enter; search permission (o+x, not read) is added where missing.
func ensureReachable(dir string, u *osUser, log *slog.Logger) error {
	if u == nil {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		ownedByUser := st != nil && int(st.Uid) == u.uid
		if !ownedByUser && fi.Mode().Perm()&0o001 == 0 {
			log.Info("localenv: adding search permission so the service user can reach its directory", "dir", p, "user", u.name)
			if err := os.Chmod(p, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("grant search permission on %s: %w", p, err)
			}
		}
		if p == "/" || p == filepath.Dir(p) {
			return nil
		}
	}
}

// spawnRequests are served by one goroutine locked to its OS thread for the life of the process. Children
// get Pdeathsig=SIGKILL, which fires when the *thread* that forked them exits; forking from a thread that
// never exits makes it fire exactly when this process dies — so a crashed or killed test binary leaves no
// servers behind even when no cleanup ran.
var (
	spawnOnce     sync.Once
	spawnRequests chan spawnRequest
)

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func startCmd(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnRequests = make(chan spawnRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread lives as long as the process
			for r := range spawnRequests {
				r.done <- r.cmd.Start()
			}
		}()
	})
	r := spawnRequest{cmd: cmd, done: make(chan error, 1)}
	spawnRequests <- r
	return <-r.done
}

// process is a server started by the harness as the leader of its own process group.
type process struct {
	name    string
	pid     int
	logPath string
	done    chan struct{} // closed once the process has exited, its group is swept and it is reaped
	exitErr error         // valid after done
}

// procSpec describes a server process to start.
type procSpec struct {
	name    string   // for logs and errors
	path    string   // executable
	args    []string // arguments
	env     []string // extra environment (on top of a minimal base)
	dir     string   // working directory
	logPath string   // stdout and stderr are appended here
	user    *osUser
}

func baseEnv(u *osUser) []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8", "LANG=C.UTF-8"}
	if p := os.Getenv("PATH"); p != "" && u == nil {
		env[0] = "PATH=" + p
	}
	if u != nil {
		env = append(env, "HOME="+u.home, "USER="+u.name, "LOGNAME="+u.name)
	} else if h, err := os.UserHomeDir(); err == nil {
		env = append(env, "HOME="+h)
	}
	return env
}

func sysProcAttr(u *osUser) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if u != nil {
		attr.Credential = &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: []uint32{uint32(u.gid)}}
	}
	return attr
}

func startProcess(s procSpec) (*process, error) {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: open log: %w", s.name, err)
	}
	defer logf.Close() // the child holds its own copy
	fmt.Fprintf(logf, "\n==== localenv: starting %s at %s ====\n", s.name, time.Now().UTC().Format(time.RFC3339Nano))

	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()

	cmd := exec.Command(s.path, s.args...)
	cmd.Env = append(baseEnv(s.user), s.env...)
	cmd.Dir = s.dir
	cmd.Stdin = devnull
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr(s.user)
	if err := startCmd(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.name, err)
	}
	p := &process{name: s.name, pid: cmd.Process.Pid, logPath: s.logPath, done: make(chan struct{})}
	go p.watch(cmd)
	return p, nil
}

// watch waits for the leader to exit without reaping it (so its PID, and with it the process group ID,
// cannot be reused), kills whatever is left of its group and descendants, then reaps it.
func (p *process) watch(cmd *exec.Cmd) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == nil || !errors.Is(err, unix.EINTR) {
			break
		}
	}
	p.sweep()
	p.exitErr = cmd.Wait()
	close(p.done)
}

// sweep SIGKILLs the process group and every descendant (some daemons, like Erlang's erl_child_setup, move
// to their own group). Only valid while the leader is not yet reaped.
func (p *process) sweep() {
	desc := descendants(p.pid)
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	for _, d := range desc {
		_ = syscall.Kill(d, syscall.SIGKILL)
	}
	waitDead(desc, 5*time.Second)
}

// waitDead waits until none of pids is running any more. Exited children of a dead parent stay zombies
// until init reaps them (on some sandboxes never); a zombie holds no port, file or memory and counts as dead.
func waitDead(pids []int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	state, _, _ := procStat(pid)
	return state != "" && state != "Z" && state != "X"
}

// exited reports whether the process has exited (and been reaped).
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill SIGKILLs the whole process tree and waits until it is gone.
func (p *process) kill() {
	if p.exited() {
		return
	}
	p.sweep()
	<-p.done
}

// stopAll stops the running processes in parallel (a broker's clean stop takes seconds each) and returns how many
// were running. Nil entries are skipped.
func stopAll(procs []*process, sig syscall.Signal, grace time.Duration) int {
	var wg sync.WaitGroup
	running := 0
	for _, p := range procs {
		if p == nil || p.exited() {
			continue
		}
		running++
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(sig, grace)
		}()
	}
	wg.Wait()
	return running
}

// stop asks the leader to exit with sig and waits up to grace before killing the tree. Helpers that left the
// group and outlive a clean exit for a moment (Erlang's erl_child_setup) are killed too. Idempotent.
func (p *process) stop(sig syscall.Signal, grace time.Duration) {
	if p.exited() {
		return
	}
	helpers := map[int]string{}
	for _, pid := range descendants(p.pid) {
		helpers[pid] = ProcessStartTime(pid)
	}
	_ = syscall.Kill(p.pid, sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
	}
	var left []int
	for pid, start := range helpers {
		if start != "" && ProcessStartTime(pid) == start { // the same process, not a reused PID
			_ = syscall.Kill(pid, syscall.SIGKILL)
			left = append(left, pid)
		}
	}
	waitDead(left, 5*time.Second)
}

// tree returns the PIDs of the process and its descendants (for tests that prove nothing is left behind).
func (p *process) tree() []int {
	if p.exited() {
		return nil
	}
	return append([]int{p.pid}, descendants(p.pid)...)
}

// failure describes why a process exited during start-up, with the tail of its log.
func (p *process) failure() error {
	tail := logTail(p.logPath, 25)
	err := fmt.Errorf("%s exited during start-up (%v); log %s:\n%s", p.name, p.exitErr, p.logPath, tail)
	low := strings.ToLower(tail)
	if strings.Contains(low, "address already in use") || strings.Contains(low, "eaddrinuse") {
		return fmt.Errorf("%w: %w", errAddrInUse, err)
	}
	return err
}

func logTail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if i := bytes.LastIndex(data, []byte("==== localenv: starting")); i >= 0 {
		data = data[i:]
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// descendants lists all transitive children of pid from /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp := parentPID(n); pp > 0 {
			children[pp] = append(children[pp], n)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, c := range children[cur] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

func parentPID(pid int) int {
	_, ppid, _ := procStat(pid)
	return ppid
}

// ProcessStartTime identifies a process instance (PID plus start time survives PID reuse); "" if gone.
func ProcessStartTime(pid int) string {
	_, _, start := procStat(pid)
	return start
}

// procStat reads a process's state letter, parent PID and start time from /proc ("", 0, "" if it does not
// exist).
func procStat(pid int) (state string, ppid int, start string) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, ""
	}
	// The fields after the parenthesised command name start with: state ppid; starttime is the 20th.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", 0, ""
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid, f[19]
}

// runCmd runs a short-lived command (initdb, pg_ctl, ...) as u, returning its combined output in errors.
func runCmd(ctx context.Context, u *osUser, env []string, path string, args ...string) error {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(baseEnv(u), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.Stdin = nil
	cmd.SysProcAttr = sysProcAttr(u)
	cmd.WaitDelay = 5 * time.Second
	if err := startCmd(cmd); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(path), strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// waitUntil polls check until it succeeds, the context ends, or proc (if any) exits. It never sleeps longer
// than 200ms between attempts.
func waitUntil(ctx context.Context, proc *process, check func(context.Context) error) error {
	delay := 10 * time.Millisecond
	var last error
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := check(attemptCtx)
		cancel()
		if err == nil {
			return nil
		}
		last = err
		if proc != nil && proc.exited() {
			return proc.failure()
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), last)
		case <-t.C:
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}
