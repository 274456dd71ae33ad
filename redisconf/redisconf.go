// Package redisconf is the one definition of how OMS runs Redis with Sentinel: the scripts each pod runs (init.sh
// renders this pod's configs and finds the master; probe.sh; prestop.sh) and the redis.conf and sentinel.conf
// templates they complete. components/redis ships them in a ConfigMap; the runtime's local test environment
// (runtime/localenv) runs the same scripts and templates on loopback addresses, so tests see the sentinels exactly
// as a cluster has them. It is its own module without dependencies, so the runtime can use it without the Pulumi
// SDKs of the root module.
package redisconf

import (
	"embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Ports of every pod; the scripts use them too (checked by a test).
const (
	RedisPort    = 6379
	SentinelPort = 26379
)

// Defaults of components/redis that the runtime relies on too.
const (
	// DefaultMasterName is the name the sentinels monitor the master under.
	DefaultMasterName = "oms"
	// DefaultMaxMemoryPolicy evicts any key, least recently used first: it is a cache.
	DefaultMaxMemoryPolicy = "allkeys-lru"
)

//go:embed scripts/*.sh
var scripts embed.FS

// Settings are what the templates need; components/redis derives them from its Args.
type Settings struct {
	// Replicas is the number of pods, each a Redis server and a Sentinel; the quorum is a majority of them.
	Replicas int
	// MasterName is what clients ask the sentinels for.
	MasterName string
	// MaxMemoryBytes is Redis' maxmemory; MaxMemoryPolicy its eviction policy.
	MaxMemoryBytes  int64
	MaxMemoryPolicy string
	// DownAfterMs is the silence after which a master is considered down; FailoverTimeoutMs bounds a failover.
	DownAfterMs       int
	FailoverTimeoutMs int
}

func (s Settings) validate() error {
	var errs []error
	if s.Replicas < 1 {
		errs = append(errs, fmt.Errorf("Settings.Replicas is %d: set the number of pods", s.Replicas))
	}
	if s.MasterName == "" {
		errs = append(errs, errors.New("Settings.MasterName is empty: set it, e.g. to DefaultMasterName"))
	}
	if s.MaxMemoryBytes <= 0 || s.MaxMemoryPolicy == "" {
		errs = append(errs, errors.New("Settings.MaxMemoryBytes and Settings.MaxMemoryPolicy are required"))
	}
	if s.DownAfterMs <= 0 || s.FailoverTimeoutMs <= 0 {
		errs = append(errs, errors.New("Settings.DownAfterMs and Settings.FailoverTimeoutMs are required"))
	}
	return errors.Join(errs...)
}

// Files are the files every pod mounts at /scripts: init.sh, probe.sh, prestop.sh and the redis.conf and
// sentinel.conf templates. They hold no credential: init.sh adds the passwords from the environment.
func Files(s Settings) (map[string]string, error) {
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("redisconf: %w", err)
	}
	files := map[string]string{}
	entries, err := scripts.ReadDir("scripts")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		b, err := scripts.ReadFile("scripts/" + e.Name())
		if err != nil {
			return nil, err
		}
		files[e.Name()] = string(b)
	}
	files["redis.conf"] = redisConf(s)
	files["sentinel.conf"] = sentinelConf(s)
	return files, nil
}

// Quorum is the number of sentinels that must agree a master is down: a majority.
func Quorum(replicas int) int { return replicas/2 + 1 }

func redisConf(s Settings) string {
	return strings.Join([]string{
		"# Completed by init.sh with dir (the data volume), replica-announce-ip, the default user's passwords, masterauth and replicaof.",
		"bind * -::*",
		"port " + strconv.Itoa(RedisPort),
		// A cache persists nothing: a lost namespace version restarts above any earlier one (it starts at the clock
		// in microseconds), so a restart costs misses, never a stale answer. AOF and RDB saves took two thirds of
		// Redis' CPU on cache misses (bench/README.md); the data volume still keeps the sentinel's state.
		"appendonly no",
		`save ""`,
		fmt.Sprintf("maxmemory %d", s.MaxMemoryBytes),
		"maxmemory-policy " + s.MaxMemoryPolicy,
		"replica-announce-port " + strconv.Itoa(RedisPort),
		"replica-serve-stale-data yes",
		"replica-read-only yes",
		"repl-diskless-sync yes",
		// A master cut off from every replica stops taking writes, so a partition cannot fork the data.
		"min-replicas-to-write 1",
		"min-replicas-max-lag 10",
		"tcp-keepalive 60",
		"",
	}, "\n")
}

func sentinelConf(s Settings) string {
	m := s.MasterName
	return strings.Join([]string{
		"# Completed by init.sh with announce-ip, the default user's passwords, sentinel-pass and auth-pass, and the current master on the monitor line.",
		"port " + strconv.Itoa(SentinelPort),
		"dir /tmp",
		// Stable DNS names instead of pod IPs, which change on every restart.
		"sentinel resolve-hostnames yes",
		"sentinel announce-hostnames yes",
		"sentinel announce-port " + strconv.Itoa(SentinelPort),
		fmt.Sprintf("sentinel monitor %s @MASTER_HOST@ %d %d", m, RedisPort, Quorum(s.Replicas)),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", m, s.DownAfterMs),
		fmt.Sprintf("sentinel failover-timeout %s %d", m, s.FailoverTimeoutMs),
		fmt.Sprintf("sentinel parallel-syncs %s 1", m),
		"",
	}, "\n")
}
