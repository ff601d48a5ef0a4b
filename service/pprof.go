//go:build pprof

package main

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
)

// Built only with -tags pprof (service/bench -pprof does that): serves
// net/http/pprof on NOTES_PPROF_ADDR, never in the production image.
func init() {
	startDebug = func(getenv func(string) string, log *slog.Logger) {
		addr := getenv("NOTES_PPROF_ADDR")
		if addr == "" {
			return
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		go func() { log.Warn("pprof", "err", http.ListenAndServe(addr, mux)) }()
	}
}
