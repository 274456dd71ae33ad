package redisconf

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var settings = Settings{Replicas: 3, MasterName: "oms", MaxMemoryBytes: 1 << 30, MaxMemoryPolicy: "allkeys-lru",
	DownAfterMs: 5000, FailoverTimeoutMs: 30000}

func files(t *testing.T) map[string]string {
	t.Helper()
	f, err := Files(settings)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFiles(t *testing.T) {
	f := files(t)
	for _, name := range []string{"init.sh", "probe.sh", "prestop.sh", "redis.conf", "sentinel.conf"} {
		if f[name] == "" {
			t.Errorf("%s is missing", name)
		}
	}
	if !strings.Contains(f["sentinel.conf"], "\nsentinel monitor oms @MASTER_HOST@ 6379 2\n") {
		t.Errorf("sentinel.conf monitors the master with a majority quorum:\n%s", f["sentinel.conf"])
	}
	for _, name := range []string{"redis.conf", "sentinel.conf"} {
		if regexp.MustCompile(`(?m)^(requirepass|masterauth|sentinel auth-pass)`).MatchString(f[name]) {
			t.Errorf("%s holds a credential; init.sh adds them from $REDISCLI_AUTH", name)
		}
	}
}

// The scripts run redis-cli against this pod's and the peers' ports: they must be the ones the templates, the
// Services and the NetworkPolicy use.
func TestScriptsUseThePorts(t *testing.T) {
	f := files(t)
	want := map[string]bool{strconv.Itoa(RedisPort): true, strconv.Itoa(SentinelPort): true}
	port := regexp.MustCompile(`(?:redis-cli .*-p |replicaof \$master )([^\s"]+)`)
	for _, name := range []string{"init.sh", "probe.sh", "prestop.sh"} {
		found := port.FindAllStringSubmatch(f[name], -1)
		if len(found) == 0 {
			t.Errorf("%s: no port found", name)
		}
		for _, m := range found {
			if !want[m[1]] {
				t.Errorf("%s uses port %s, not RedisPort or SentinelPort", name, m[1])
			}
		}
	}
}

func TestFilesNameMissingSettings(t *testing.T) {
	_, err := Files(Settings{})
	if err == nil {
		t.Fatal("empty settings accepted")
	}
	for _, field := range []string{"Settings.Replicas", "Settings.MasterName", "Settings.MaxMemoryBytes", "Settings.DownAfterMs"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
}

// TestTheCachePersistsNothing: Redis holds only the runtime's cache, whose namespace versions restart above any
// earlier value when lost (they start at the clock in microseconds), so no write may cost an append-only-file
// write or a snapshot. With AOF every second and RDB saves, Redis spent two thirds of its CPU on persistence in the
// bench's cache-miss phase (35% of 2 cores, against 12% without).
func TestTheCachePersistsNothing(t *testing.T) {
	conf := files(t)["redis.conf"]
	for _, want := range []string{"\nappendonly no\n", "\nsave \"\"\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("redis.conf lacks %q:\n%s", strings.TrimSpace(want), conf)
		}
	}
}
