// Command promrules prints the alert rules of components/observability/rules as a Prometheus rule file, for a
// Prometheus outside GKE: the runtime's end-to-end alert test loads it into a real Prometheus scraping real `oms`
// processes. Selectors name the local scrape jobs; -for shortens every rule's `for` (the expressions are unchanged).
//
//	go run ./components/observability/rules/cmd/promrules -web 'job="web"' -worker 'job="worker"' -for 2s -interval 1s
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/omscloud/omscloud/components/observability/rules"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "promrules:", err)
		os.Exit(1)
	}
}

func run() error {
	sandbox := flag.Bool("sandbox", false, "sandbox thresholds instead of production's")
	p := rules.Production()
	flag.StringVar(&p.Web, "web", `job="web"`, "label matchers of oms serve's series")
	flag.StringVar(&p.Worker, "worker", `job="worker"`, "label matchers of oms worker's series")
	flag.StringVar(&p.Redis, "redis", `job="redis"`, "label matchers of the Redis exporters' series")
	flag.StringVar(&p.RabbitMQ, "rabbitmq", `job="rabbitmq"`, "label matchers of RabbitMQ's series")
	flag.StringVar(&p.Hosts, "hosts", `host="localhost"`, "label matchers of the uptime checks' series")
	flag.StringVar(&p.Database, "database", `database_id="local:oms"`, "label matchers of Cloud SQL's series")
	forOverride := flag.Duration("for", 0, "replace every rule's `for` (0 keeps them)")
	interval := flag.Duration("interval", rules.EvaluationInterval, "rule evaluation interval")
	flag.Parse()
	if *sandbox {
		s := rules.Sandbox()
		s.Web, s.Worker, s.Redis, s.RabbitMQ, s.Hosts, s.Database = p.Web, p.Worker, p.Redis, p.RabbitMQ, p.Hosts, p.Database
		p = s
	}
	groups, err := rules.For(p)
	if err != nil {
		return err
	}
	if *forOverride > 0 {
		for gi := range groups {
			for ri := range groups[gi].Rules {
				groups[gi].Rules[ri].For = *forOverride
			}
		}
	}
	out, err := rules.PrometheusYAMLEvery(groups, *interval)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}
