// Package profiling serves net/http/pprof for load tests. It is compiled in
// only with -tags pprof (go run ./bench -pprof builds that way); in every
// other build, the production image included, Start does nothing.
package profiling

// Env is the variable naming the address to serve the profiles on.
const Env = "NOTES_PPROF_ADDR"
