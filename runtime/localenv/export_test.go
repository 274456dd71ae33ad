package localenv

import "context"

// Internals the external tests (package localenv_test) inspect.

var Alive = alive

func (p *Postgres) PrimaryProcessTree() []int { return p.primary.proc.tree() }

func (r *Redis) Dir() string                                { return r.dir }
func (r *Redis) PodHost(i int) string                       { return r.pods[i].host }
func (r *Redis) PodAddr(i int) string                       { return r.pods[i].addr() }
func (r *RabbitMQ) EpmdPID() int                            { return r.epmd.pid }
func (r *RabbitMQ) WaitClustered(ctx context.Context) error { return r.waitClustered(ctx) }

// ManagementGet does GET path on the management API of the first node.
func (r *RabbitMQ) ManagementGet(ctx context.Context, path string) error {
	_, err := r.api(ctx, r.nodes[0], "GET", path, nil)
	return err
}
