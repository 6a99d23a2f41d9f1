// Package metrics defines the room server's Prometheus metrics. The collectors are created
// per server and registered on the registry given (never the global one), so tests and
// several servers in one process do not collide.
//
// Concurrency: Prometheus collectors are safe for concurrent use.
package metrics
