// Package localenv starts real PostgreSQL, Redis (with Sentinel) and RabbitMQ as local processes on
// loopback, for tests, fault drills and the `oms dev` environment.
//
// Install the services with scripts/install-services.sh (Debian packages; no system-wide instance is left
// running). Every server listens on a free loopback port (Redis: a free loopback address) picked at start
// (retried on a collision), keeps all its files — data, configs, logs (<role>.log), sockets — under the Dir
// it is given, and runs in a process group this package created: Stop and the Kill methods signal only
// those groups and wait until the processes are gone. The children also carry a parent-death signal, so a crashed test binary leaves no
// server behind. As root, PostgreSQL and RabbitMQ run as their system users (postgres, rabbitmq) and Dir is
// handed to them (adding search permission on its ancestors where missing); as any other user they run as
// that user.
//
// Every Start function returns only when the service is ready (accepting connections, standby streaming,
// sentinels agreeing, broker node answering); WaitStreaming, ReplicationLag, WaitFailover, WaitReady and
// WaitQueueRegistered wait on conditions, so callers never sleep.
//
// # PostgreSQL
//
// StartPostgres initialises a cluster under Dir (superuser "postgres" with a generated password, SCRAM on
// TCP) or reuses the one already there — that is the persistent `oms dev` cluster:
//
//	pg, err := localenv.StartPostgres(ctx, localenv.PostgresOptions{Dir: cacheDir})
//	defer pg.Stop()
//	db, err := pgxpool.New(ctx, pg.URL("postgres"))
//
// With Standby the cluster gets a streaming standby with a replication slot, synchronous by default so
// that a failover loses no acknowledged commit. URL lists both nodes with target_session_attrs=read-write,
// so a new connection finds the promoted standby after a drill:
//
//	pg.KillPrimary()      // SIGKILL, like a lost machine
//	pg.Promote(ctx)       // pg_ctl promote -w
//	pgx.Connect(ctx, pg.URL("postgres"))
//
// BinDir gives pgbench, pg_dump and friends of the same version.
//
// # Redis
//
// StartRedis runs what components/redis deploys, from the same init.sh and redis.conf/sentinel.conf
// templates (module redisconf): 3 pods, each a Redis server and a Sentinel, the Redis servers and the
// sentinels all requiring a password: the pods' own (Password; generated unless given), or the clients' current
// or previous one when given (ClientPassword, PreviousClientPassword). Each pod has its own loopback
// address (127.X.Y.1-3, the ports 6379 and 26379 on each, as pods have their own IP); only the bind
// address and the diskless-sync delay are set locally, and failover uses the component's fastest settings
// (down-after-milliseconds 1000, failover-timeout 3000). It returns once the sentinels agree on the master and know each
// other and the replicas. Clients use SentinelAddrs, MasterName and Password (for the sentinels too);
// drills use KillMaster and WaitFailover; Rotate restarts a pod with new client passwords, as a rolling update
// after a rotation does.
//
// # RabbitMQ
//
// StartRabbitMQ starts a node (or a cluster with Nodes > 1) with its own epmd, the management API and a
// generated administrator (URL, never guest). AddVhost/DeleteVhost manage vhosts; Kill and Restart drive
// broker drills. A quorum queue declared less than about a second before a kill -9 loses its Raft
// registration in RabbitMQ 3.10; drills that kill right after declaring call WaitQueueRegistered first.
//
// # Tests
//
// The helpers for tests are in package localenvtest, so that this package (linked into the oms binary for
// `oms dev`) does not link testing. Real-service tests call localenvtest.RequireBinaries (a skip, or a failure
// when CI=true). The common case shares one instance per test binary and gives each test its own namespace,
// dropped in t.Cleanup:
//
//	func TestMain(m *testing.M) { os.Exit(localenvtest.RunTests(m)) } // stops the shared instances, removes their files
//
//	func TestX(t *testing.T) {
//		dbURL := localenvtest.NewDatabase(t, localenvtest.SharedPostgres(t))
//		amqpURL := localenvtest.NewVhost(t, localenvtest.SharedRabbitMQ(t))
//		prefix := localenvtest.NewKeyPrefix(t, localenvtest.SharedRedis(t))
//		...
//	}
//
// Tests that kill, promote or restart something start their own instance in t.TempDir() and register
// Stop with t.Cleanup. Run the package's own tests with `go test ./localenv/ -p 1`.
package localenv
