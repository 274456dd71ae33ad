package localenv_test

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/localenv"
	"github.com/omscloud/omscloud/runtime/localenv/localenvtest"
)

func TestMain(m *testing.M) { os.Exit(localenvtest.RunTests(m)) }

// procSnapshot remembers processes by PID and start time, so a reused PID is not mistaken for a survivor.
type procSnapshot map[int]string

func snapshot(pids []int) procSnapshot {
	s := procSnapshot{}
	for _, pid := range pids {
		if st := localenv.ProcessStartTime(pid); st != "" {
			s[pid] = st
		}
	}
	return s
}

// requireGone asserts that no process of the snapshot is still running (a zombie — exited, waiting to be
// reaped by init — counts as gone).
func requireGone(t *testing.T, s procSnapshot) {
	t.Helper()
	require.NotEmpty(t, s, "the snapshot must hold the started processes")
	var running []int
	for pid, st := range s {
		if localenv.ProcessStartTime(pid) == st && localenv.Alive(pid) {
			running = append(running, pid)
		}
	}
	require.Empty(t, running, "processes left behind")
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestPostgresStandbyFailover(t *testing.T) {
	localenvtest.RequireBinaries(t, localenvtest.PostgresBinaries...)
	ctx := testCtx(t, 2*time.Minute)
	begin := time.Now()
	pg, err := localenv.StartPostgres(ctx, localenv.PostgresOptions{Dir: t.TempDir(), Standby: true, Settings: localenvtest.TestPostgresSettings, Logger: localenvtest.TestLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Stop() })
	t.Logf("primary + standby ready in %s", time.Since(begin).Round(time.Millisecond))
	require.NotEqual(t, pg.PrimaryPort(), pg.StandbyPort())

	primary, err := pgx.Connect(ctx, pg.PrimaryURL("postgres"))
	require.NoError(t, err)
	defer primary.Close(ctx)
	_, err = primary.Exec(ctx, `CREATE TABLE orders (id int PRIMARY KEY)`)
	require.NoError(t, err)
	// Acknowledged writes: with the default synchronous standby none of them may be lost by the failover.
	for i := 1; i <= 200; i++ {
		_, err = primary.Exec(ctx, `INSERT INTO orders VALUES ($1)`, i)
		require.NoError(t, err)
	}

	lag, err := pg.ReplicationLag(ctx)
	require.NoError(t, err)
	t.Logf("replication lag after 200 commits: %s", lag)

	standby, err := pgx.Connect(ctx, pg.StandbyURL("postgres"))
	require.NoError(t, err)
	var inRecovery bool
	var n int
	require.NoError(t, standby.QueryRow(ctx, `SELECT pg_is_in_recovery(), (SELECT count(*) FROM orders)`).Scan(&inRecovery, &n))
	assert.True(t, inRecovery, "the standby is in recovery")
	assert.Equal(t, 200, n, "rows written on the primary are on the standby")
	_, err = standby.Exec(ctx, `INSERT INTO orders VALUES (0)`)
	require.Error(t, err, "the standby is read-only")
	standby.Close(ctx)

	primaryProcs := snapshot(pg.PrimaryProcessTree())
	require.NoError(t, pg.KillPrimary())
	requireGone(t, primaryProcs)

	killed := time.Now()
	require.NoError(t, pg.Promote(ctx))
	promoted := time.Since(killed)
	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `INSERT INTO orders VALUES (201)`)
	require.NoError(t, err)
	firstWrite := time.Since(killed)
	t.Logf("failover: promote %s, first write through URL() %s after the kill", promoted.Round(time.Millisecond), firstWrite.Round(time.Millisecond))

	_, port, _ := net.SplitHostPort(conn.PgConn().Conn().RemoteAddr().String())
	assert.Equal(t, strconv.Itoa(pg.StandbyPort()), port, "URL() reaches the promoted standby")
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&n))
	assert.Equal(t, 201, n, "every acknowledged row survived the failover")

	all := snapshot(pg.Processes())
	require.NoError(t, pg.Stop())
	requireGone(t, all)
	require.NoError(t, pg.Stop(), "Stop is idempotent")
}

func TestPostgresDevClusterKeepsData(t *testing.T) {
	localenvtest.RequireBinaries(t, localenvtest.PostgresBinaries...)
	ctx := testCtx(t, time.Minute)
	dir := t.TempDir()

	begin := time.Now()
	pg, err := localenv.StartPostgres(ctx, localenv.PostgresOptions{Dir: dir, Logger: localenvtest.TestLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Stop() })
	fresh := time.Since(begin)
	assert.Equal(t, 0, pg.StandbyPort())
	require.NoError(t, pg.Exec(ctx, pg.URL("postgres"), `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives a restart')`))
	first := snapshot(pg.Processes())
	require.NoError(t, pg.Stop())
	requireGone(t, first)

	begin = time.Now()
	again, err := localenv.StartPostgres(ctx, localenv.PostgresOptions{Dir: dir, Logger: localenvtest.TestLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = again.Stop() })
	t.Logf("dev cluster: fresh start %s, reopen %s", fresh.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
	assert.Equal(t, pg.Password(), again.Password(), "the superuser password is kept with the cluster")

	conn, err := pgx.Connect(ctx, again.URL("postgres"))
	require.NoError(t, err)
	defer conn.Close(ctx)
	var v string
	require.NoError(t, conn.QueryRow(ctx, `SELECT v FROM kept`).Scan(&v))
	assert.Equal(t, "survives a restart", v)

	// Password authentication is real on TCP: a wrong password is refused.
	cfg, err := pgx.ParseConfig(again.URL("postgres"))
	require.NoError(t, err)
	cfg.Password = "wrong"
	_, err = pgx.ConnectConfig(ctx, cfg)
	require.Error(t, err, "a wrong password must be refused")

	second := snapshot(again.Processes())
	require.NoError(t, again.Stop())
	requireGone(t, second)
}

func TestPostgresRejectsForeignDirectory(t *testing.T) {
	localenvtest.RequireBinaries(t, localenvtest.PostgresBinaries...)
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(dir+"/primary", 0o755))
	require.NoError(t, os.WriteFile(dir+"/primary/somefile", []byte("x"), 0o644))
	_, err := localenv.StartPostgres(testCtx(t, time.Minute), localenv.PostgresOptions{Dir: dir})
	require.ErrorContains(t, err, "holds no cluster")
	_, err = localenv.StartPostgres(testCtx(t, time.Minute), localenv.PostgresOptions{})
	require.ErrorContains(t, err, "PostgresOptions.Dir is required")
}

// TestRedisSentinelFailover runs components/redis' StatefulSet as rendered (module redisconf): 3 pods, each a Redis
// server and a Sentinel configured by init.sh, both requiring the password.
func TestRedisSentinelFailover(t *testing.T) {
	localenvtest.RequireBinaries(t, localenvtest.RedisBinaries...)
	ctx := testCtx(t, time.Minute)
	begin := time.Now()
	r, err := localenv.StartRedis(ctx, localenv.RedisOptions{Dir: t.TempDir(), Logger: localenvtest.TestLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Stop() })
	t.Logf("3 pods (master + 2 replicas, a sentinel in each) ready in %s", time.Since(begin).Round(time.Millisecond))
	require.Len(t, r.SentinelAddrs(), 3)
	assert.Equal(t, "oms", r.MasterName())
	assert.NotEmpty(t, r.Password(), "a password is generated, as the component does")

	// The rendered configs are init.sh's, from the component's templates: the password came from the environment.
	conf, err := os.ReadFile(filepath.Join(r.Dir(), "redis-1", "conf", "redis.conf"))
	require.NoError(t, err)
	assert.Contains(t, string(conf), "min-replicas-to-write 1\n")
	assert.Contains(t, string(conf), "replicaof "+r.PodHost(0)+" 6379\n")
	sentinelConf, err := os.ReadFile(filepath.Join(r.Dir(), "redis-1", "data", "sentinel", "sentinel.conf"))
	require.NoError(t, err)
	assert.Contains(t, string(sentinelConf), "user default on ")
	assert.Contains(t, string(sentinelConf), "sentinel auth-pass oms ")

	// Sentinels know each other and the replicas before localenv.StartRedis returns.
	for _, addr := range r.SentinelAddrs() {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr, Password: r.Password()})
		m, err := sc.Master(ctx, "oms").Result()
		sc.Close()
		require.NoError(t, err)
		assert.Equal(t, "2", m["num-other-sentinels"], addr)
		assert.Equal(t, "2", m["num-slaves"], addr)
		assert.Equal(t, "2", m["quorum"], addr)
		assert.Equal(t, "1000", m["down-after-milliseconds"], addr)
	}

	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: r.MasterName(), SentinelAddrs: r.SentinelAddrs(),
		Password: r.Password(), SentinelPassword: r.Password()})
	defer fc.Close()
	require.NoError(t, fc.Set(ctx, "k", "before", 0).Err())
	require.NoError(t, fc.Do(ctx, "WAIT", 2, 5000).Err(), "replicated before the kill")

	// Clients without the password are refused, by Redis and by the sentinels.
	noAuth := redis.NewClient(&redis.Options{Addr: r.MasterAddr()})
	assert.ErrorContains(t, noAuth.Get(ctx, "k").Err(), "NOAUTH")
	noAuth.Close()
	noAuthSentinel := redis.NewSentinelClient(&redis.Options{Addr: r.SentinelAddrs()[0]})
	assert.ErrorContains(t, noAuthSentinel.GetMasterAddrByName(ctx, "oms").Err(), "NOAUTH")
	noAuthSentinel.Close()

	old := r.MasterAddr()
	assert.Equal(t, r.PodAddr(0), old)
	all := snapshot(r.Processes())
	require.NoError(t, r.KillMaster())
	killed := time.Now()
	newMaster, err := r.WaitFailover(ctx, old)
	require.NoError(t, err)
	t.Logf("sentinel failover %s -> %s, writable again in %s", old, newMaster, time.Since(killed).Round(time.Millisecond))
	assert.Contains(t, []string{r.PodAddr(1), r.PodAddr(2)}, newMaster, "a replica was elected")
	assert.Equal(t, newMaster, r.MasterAddr())

	v, err := fc.Get(ctx, "k").Result()
	require.NoError(t, err)
	assert.Equal(t, "before", v, "data replicated before the kill is on the new master")
	require.NoError(t, fc.Set(ctx, "k", "after", 0).Err(), "the failover client writes to the new master")

	require.NoError(t, r.Stop())
	requireGone(t, all)
}

// TestRedisPasswordRotationRefusesNobody rolls the pods as the StatefulSet does after components/redis rotated the
// clients' password (highest ordinal first, the master handing its role over): after each pod, a client still on
// the old password reads and writes through the sentinels, and every replica is in sync (the pods reach each other
// with their own password, which no rotation changes). At the end the new password works and the one two rotations
// old is refused.
func TestRedisPasswordRotationRefusesNobody(t *testing.T) {
	localenvtest.RequireBinaries(t, localenvtest.RedisBinaries...)
	ctx := testCtx(t, 2*time.Minute)
	const older, old, next = "clientSlot1gen0", "clientSlot0gen0", "clientSlot1gen1"
	r, err := localenv.StartRedis(ctx, localenv.RedisOptions{Dir: t.TempDir(), Logger: localenvtest.TestLogger(t), ClientPassword: old, PreviousClientPassword: older})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Stop() })
	client := func(pw string) *redis.Client {
		c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: r.MasterName(), SentinelAddrs: r.SentinelAddrs(),
			Password: pw, SentinelPassword: pw})
		t.Cleanup(func() { c.Close() })
		return c
	}
	before := client(old)
	require.NoError(t, before.Set(ctx, "k", "before", 0).Err())

	begin := time.Now()
	for i := 2; i >= 0; i-- {
		require.NoError(t, r.Rotate(ctx, i, next, old), "roll redis-%d:\n%s", i, r.LogTail(20))
		require.NoError(t, before.Set(ctx, "k", i, 0).Err(), "the old password still writes after redis-%d rolled", i)
		require.NoError(t, before.Do(ctx, "WAIT", 2, 5000).Err(), "and both replicas follow")
	}
	t.Logf("3 pods rolled to the new password in %s", time.Since(begin).Round(time.Millisecond))

	v, err := client(next).Get(ctx, "k").Result()
	require.NoError(t, err, "the new password works through the sentinels")
	assert.Equal(t, "0", v)
	stale := redis.NewClient(&redis.Options{Addr: r.MasterAddr(), Password: older})
	defer stale.Close()
	assert.ErrorContains(t, stale.Ping(ctx).Err(), "WRONGPASS", "the password two rotations old is refused")
}

func TestRabbitMQQuorumMessageSurvivesRestart(t *testing.T) {
	localenvtest.RequireBinaries(t, localenvtest.RabbitMQBinaries...)
	ctx := testCtx(t, 2*time.Minute)
	begin := time.Now()
	r, err := localenv.StartRabbitMQ(ctx, localenv.RabbitMQOptions{Dir: t.TempDir(), Logger: localenvtest.TestLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Stop() })
	t.Logf("rabbitmq node ready in %s", time.Since(begin).Round(time.Millisecond))
	assert.NotContains(t, r.URL(), "guest")

	vhostURL := localenvtest.NewVhost(t, r)
	publishConfirmed(t, vhostURL, "orders", "order-1")
	require.NoError(t, r.WaitQueueRegistered(ctx, 0, vhostName(vhostURL), "orders"))

	all := snapshot(r.Processes())
	require.NoError(t, r.Kill(0))
	killed := time.Now()
	require.NoError(t, r.Restart(ctx, 0))
	t.Logf("rabbitmq kill -9 + restart until ready: %s", time.Since(killed).Round(time.Millisecond))
	for pid, st := range all {
		if pid != r.EpmdPID() {
			assert.NotEqual(t, st, localenv.ProcessStartTime(pid), "node process %d survived Kill", pid)
		}
	}

	conn, err := amqp.Dial(vhostURL)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	msg, ok, err := ch.Get("orders", false)
	require.NoError(t, err)
	require.True(t, ok, "the confirmed message survived kill -9 and restart")
	assert.Equal(t, "order-1", string(msg.Body))
	require.NoError(t, msg.Ack(false))

	all = snapshot(r.Processes())
	require.NoError(t, r.Stop())
	requireGone(t, all)
}

// publishConfirmed declares a durable quorum queue and publishes body with a publisher confirm.
func publishConfirmed(t *testing.T, url, queue, body string) {
	t.Helper()
	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
	require.NoError(t, err)
	require.NoError(t, ch.Confirm(false))
	ctx := testCtx(t, 30*time.Second)
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false,
		amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(body)})
	require.NoError(t, err)
	acked, err := dc.WaitContext(ctx)
	require.NoError(t, err)
	require.True(t, acked, "the broker confirmed the message")
}

func TestRabbitMQCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster takes ~30s to form")
	}
	localenvtest.RequireBinaries(t, localenvtest.RabbitMQBinaries...)
	ctx := testCtx(t, 3*time.Minute)
	begin := time.Now()
	r, err := localenv.StartRabbitMQ(ctx, localenv.RabbitMQOptions{Dir: t.TempDir(), Nodes: 3, Logger: localenvtest.TestLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Stop() })
	t.Logf("3-node rabbitmq cluster ready in %s", time.Since(begin).Round(time.Millisecond))
	require.Len(t, r.URLs(), 3)

	publishConfirmed(t, r.URL(), "jobs", "job-1")
	require.NoError(t, r.WaitQueueRegistered(ctx, 2, "/", "jobs"))
	require.NoError(t, r.Kill(2))
	// Two of three replicas remain: the quorum queue keeps confirming.
	publishConfirmed(t, r.URL(), "jobs", "job-2")
	require.NoError(t, r.Restart(ctx, 2))
	require.NoError(t, r.WaitClustered(ctx))

	conn, err := amqp.Dial(r.URLs()[2])
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	var got []string
	for i := 0; i < 2; i++ {
		msg, ok, err := ch.Get("jobs", true)
		require.NoError(t, err)
		require.True(t, ok)
		got = append(got, string(msg.Body))
	}
	assert.Equal(t, []string{"job-1", "job-2"}, got, "both confirmed messages, through the restarted node")

	all := snapshot(r.Processes())
	require.NoError(t, r.Stop())
	requireGone(t, all)
}

func TestSharedInstancesAndPerTestNamespaces(t *testing.T) {
	var dbName, vhost string
	t.Run("postgres", func(t *testing.T) {
		pg := localenvtest.SharedPostgres(t)
		assert.Same(t, pg, localenvtest.SharedPostgres(t), "one instance per test binary")
		url := localenvtest.NewDatabase(t, pg)
		other := localenvtest.NewDatabase(t, pg)
		assert.NotEqual(t, url, other)
		cfg, err := pgx.ParseConfig(url)
		require.NoError(t, err)
		dbName = cfg.Database
		ctx := testCtx(t, 30*time.Second)
		conn, err := pgx.Connect(ctx, url)
		require.NoError(t, err)
		defer conn.Close(ctx)
		var current string
		require.NoError(t, conn.QueryRow(ctx, `SELECT current_database()`).Scan(&current))
		assert.Equal(t, dbName, current)
	})
	t.Run("redis", func(t *testing.T) {
		r := localenvtest.SharedRedis(t)
		prefix := localenvtest.NewKeyPrefix(t, r)
		assert.True(t, strings.HasPrefix(prefix, "t:"))
		c := redis.NewClient(&redis.Options{Addr: r.MasterAddr(), Password: r.Password()})
		defer c.Close()
		require.NoError(t, c.Set(testCtx(t, 10*time.Second), prefix+"x", "1", 0).Err())
	})
	t.Run("rabbitmq", func(t *testing.T) {
		r := localenvtest.SharedRabbitMQ(t)
		url := localenvtest.NewVhost(t, r)
		vhost = vhostName(url)
		publishConfirmed(t, url, "q", "hello")
	})
	if t.Failed() {
		return
	}
	ctx := testCtx(t, 30*time.Second)

	pg := localenvtest.SharedPostgres(t)
	var exists bool
	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	require.NoError(t, err)
	defer conn.Close(ctx)
	require.NoError(t, conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, dbName).Scan(&exists))
	assert.False(t, exists, "the per-test database is dropped at cleanup")

	c := redis.NewClient(&redis.Options{Addr: localenvtest.SharedRedis(t).MasterAddr(), Password: localenvtest.SharedRedis(t).Password()})
	defer c.Close()
	keys, err := c.Keys(ctx, "t:*").Result()
	require.NoError(t, err)
	assert.Empty(t, keys, "the per-test keys are deleted at cleanup")

	r := localenvtest.SharedRabbitMQ(t)
	err = r.ManagementGet(ctx, "/api/vhosts/"+vhost)
	require.Error(t, err, "the per-test vhost is deleted at cleanup")
	assert.Contains(t, err.Error(), "404")
}

func vhostName(amqpURL string) string {
	u, err := url.Parse(amqpURL)
	if err != nil {
		panic(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}
