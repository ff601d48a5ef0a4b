package postgres

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// poolCollector exports pgxpool.Stat as Prometheus metrics.
type poolCollector struct {
	pool  *pgxpool.Pool
	descs map[string]*prometheus.Desc
}

// NewPoolCollector returns a collector of pool's statistics (pgxpool_*
// metrics); register it once.
func NewPoolCollector(pool *pgxpool.Pool) prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("pgxpool_"+name, help, nil, nil)
	}
	return &poolCollector{pool: pool, descs: map[string]*prometheus.Desc{
		"acquire_count":          d("acquire_count_total", "Successful connection acquires from the pool."),
		"acquire_duration":       d("acquire_duration_seconds_total", "Total time spent acquiring connections."),
		"acquired_conns":         d("acquired_conns", "Connections currently in use."),
		"canceled_acquire_count": d("canceled_acquire_count_total", "Acquires cancelled by their context."),
		"constructing_conns":     d("constructing_conns", "Connections being established."),
		"empty_acquire_count":    d("empty_acquire_count_total", "Acquires that had to wait for a connection."),
		"idle_conns":             d("idle_conns", "Idle connections."),
		"max_conns":              d("max_conns", "Maximum pool size (DB_MAX_CONNS)."),
		"total_conns":            d("total_conns", "Open connections."),
		"new_conns_count":        d("new_conns_count_total", "Connections opened."),
		"max_lifetime_destroy":   d("max_lifetime_destroy_count_total", "Connections closed for reaching their maximum lifetime."),
		"max_idle_destroy":       d("max_idle_destroy_count_total", "Connections closed for idling too long."),
	}}
}

// Describe implements prometheus.Collector.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	counter := prometheus.CounterValue
	gauge := prometheus.GaugeValue
	m := func(name string, t prometheus.ValueType, v float64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], t, v)
	}
	m("acquire_count", counter, float64(s.AcquireCount()))
	m("acquire_duration", counter, s.AcquireDuration().Seconds())
	m("acquired_conns", gauge, float64(s.AcquiredConns()))
	m("canceled_acquire_count", counter, float64(s.CanceledAcquireCount()))
	m("constructing_conns", gauge, float64(s.ConstructingConns()))
	m("empty_acquire_count", counter, float64(s.EmptyAcquireCount()))
	m("idle_conns", gauge, float64(s.IdleConns()))
	m("max_conns", gauge, float64(s.MaxConns()))
	m("total_conns", gauge, float64(s.TotalConns()))
	m("new_conns_count", counter, float64(s.NewConnsCount()))
	m("max_lifetime_destroy", counter, float64(s.MaxLifetimeDestroyCount()))
	m("max_idle_destroy", counter, float64(s.MaxIdleDestroyCount()))
}
